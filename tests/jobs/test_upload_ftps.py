"""Uploads over FTPS (explicit TLS, data channel protected) to a real pyftpdlib TLS server, and
FTP(S) resume: the server's certificate is checked (a server the station does not trust is a
clear failure, tried once), and an upload continues from the size the server holds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bus.messages import TransferFailure
from tests.support.ftp_server import FtpServer
from workers.jobs.upload import UploadError, upload, upload_with_retries

CONTENT = os.urandom(300 * 1024)


@pytest.fixture
def file(tmp_path: Path) -> Path:
    path = tmp_path / "diagnostics-ftps.zip"
    path.write_bytes(CONTENT)
    return path


def test_an_ftps_upload_to_a_trusted_server_stores_the_file(ftps_server: FtpServer, file: Path) -> None:
    where = upload(file, ftps_server.url("uploads/"), timeout_s=5, ssl_context=ftps_server.ssl_context)
    assert (ftps_server.root / "uploads" / file.name).read_bytes() == CONTENT
    assert where.startswith("ftps://diag@") and "s3cret" not in where
    assert {"AUTH TLS", "PROT P"} <= set(ftps_server.commands)


def test_an_untrusted_ftps_server_fails_clearly_and_is_tried_once(ftps_server: FtpServer,
                                                                   file: Path) -> None:
    failures: list[int] = []
    with pytest.raises(UploadError) as untrusted:  # the system's trust store does not know it
        upload_with_retries(file, ftps_server.url("uploads/"), attempts=3, retry_interval_s=5,
                            on_failure=lambda attempt, _: failures.append(attempt))
    assert "certificate is not trusted" in str(untrusted.value) and "s3cret" not in str(untrusted.value)
    assert untrusted.value.failure is TransferFailure.TRANSFER_FAILED and not untrusted.value.retryable
    assert failures == [1] and "PASS" not in ftps_server.commands  # no password sent to it
    assert not (ftps_server.root / "uploads" / file.name).exists()


def test_an_ftps_upload_resumes_from_the_size_the_server_holds(ftps_server: FtpServer, file: Path) -> None:
    (ftps_server.root / "uploads" / file.name).write_bytes(CONTENT[:100_000])
    upload(file, ftps_server.url("uploads/"), timeout_s=5, resume=True, ssl_context=ftps_server.ssl_context)
    assert "REST 100000" in ftps_server.commands
    assert (ftps_server.root / "uploads" / file.name).read_bytes() == CONTENT


@pytest.mark.parametrize("held", [b"", b"x" * (len(CONTENT) + 1)], ids=["nothing", "more than the file"])
def test_an_upload_starts_over_when_the_server_holds_nothing_to_continue(ftp_server: FtpServer, file: Path,
                                                                          held: bytes) -> None:
    if held:
        (ftp_server.root / "uploads" / file.name).write_bytes(held)
    upload(file, ftp_server.url("uploads/"), timeout_s=5, resume=True)
    assert not [line for line in ftp_server.commands if line.startswith("REST")]
    assert (ftp_server.root / "uploads" / file.name).read_bytes() == CONTENT


def test_without_resume_the_file_is_sent_whole(ftp_server: FtpServer, file: Path) -> None:
    (ftp_server.root / "uploads" / file.name).write_bytes(CONTENT[:1000])
    upload(file, ftp_server.url("uploads/"), timeout_s=5)
    assert not any(line.startswith(("SIZE", "REST")) for line in ftp_server.commands)
    assert (ftp_server.root / "uploads" / file.name).read_bytes() == CONTENT
