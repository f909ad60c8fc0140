"""Uploads over FTP to a real FTP server (pyftpdlib): the file lands in the named folder with
its bytes intact, refused credentials are a permission failure that is not retried, and a
folder the server does not have is a failed transfer. (FTPS needs the server's certificate in
the system trust store; its code path differs only by ftplib.FTP_TLS and prot_p.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.messages import TransferFailure
from tests.support.ftp_server import FtpServer
from workers.jobs.upload import UploadError, upload, upload_with_retries

CONTENT = bytes(range(256)) * 400  # binary, 100 KiB: a text-mode transfer would alter it


@pytest.fixture
def file(tmp_path: Path) -> Path:
    path = tmp_path / "diagnostics-ftp.zip"
    path.write_bytes(CONTENT)
    return path


def test_an_ftp_upload_stores_the_file_in_binary_in_the_folder(ftp_server: FtpServer, file: Path) -> None:
    where = upload(file, ftp_server.url("uploads/"), timeout_s=5)
    assert (ftp_server.root / "uploads" / file.name).read_bytes() == CONTENT
    assert "s3cret" not in where and where.endswith("/uploads/diagnostics-ftp.zip")


def test_refused_ftp_credentials_are_a_permission_failure_tried_once(ftp_server: FtpServer,
                                                                     file: Path) -> None:
    failures: list[int] = []
    with pytest.raises(UploadError) as refused:
        upload_with_retries(file, ftp_server.url("uploads", password="wrong"), attempts=3,
                            retry_interval_s=5, on_failure=lambda attempt, _: failures.append(attempt))
    assert refused.value.failure is TransferFailure.PERMISSION_DENIED and not refused.value.retryable
    assert "wrong" not in str(refused.value) and failures in ([], [1])
    assert not (ftp_server.root / "uploads" / file.name).exists()


def test_a_missing_ftp_folder_is_a_refused_transfer(ftp_server: FtpServer, file: Path) -> None:
    with pytest.raises(UploadError) as failed:
        upload(file, ftp_server.url("no/such/folder"), timeout_s=5)
    assert failed.value.failure in (TransferFailure.TRANSFER_FAILED, TransferFailure.PERMISSION_DENIED)
    assert "s3cret" not in str(failed.value)
