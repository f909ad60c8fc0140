"""Resumable firmware downloads against real servers (tests/support: an HTTP server that honours
or ignores Range and can hang up mid-body, a pyftpdlib FTP/FTPS server that records REST and can
end a RETR early): the part file ends with exactly the server's bytes, a resumed transfer asks
only for what is missing, a changed file starts over, refusals are not retried, a cancel stops
between attempts, and a password never reaches a log line or an error text."""

from __future__ import annotations

import hashlib
import logging
import random
import time
from pathlib import Path

import pytest

from bus.messages import TransferFailure
from tests.support.ftp_server import FtpServer
from tests.support.upload_server import UploadServer
from workers.fota import download as download_module
from workers.fota.download import (
    DownloadCancelled,
    DownloadError,
    download,
    download_with_retries,
    validator_file,
)

CONTENT = random.Random(7).randbytes(3 * 1024 * 1024 + 123)  # several sync steps, not chunk-aligned
DIGEST = hashlib.sha256(CONTENT).hexdigest()
CUT = 1_500_000


@pytest.fixture
def part(tmp_path: Path) -> Path:
    return tmp_path / "downloads" / "7.part"


@pytest.fixture
def http_file(upload_server: UploadServer) -> str:
    upload_server.files["/fw/update.bin"] = CONTENT
    return f"{upload_server.url}/fw/update.bin"


@pytest.fixture
def ftp_file(ftp_server: FtpServer) -> str:
    (ftp_server.root / "fw").mkdir()
    (ftp_server.root / "fw" / "update.bin").write_bytes(CONTENT)
    return ftp_server.url("fw/update.bin")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ranges(server: UploadServer) -> list[str | None]:
    return [fetch.headers.get("Range") for fetch in server.fetches]


def _rests(server: FtpServer) -> list[str]:
    return [command for command in server.commands if command.startswith("REST")]


# ---- whole files and resumes ----------------------------------------------------------------


def test_a_whole_file_arrives_over_http_and_progress_reports_synced_bytes(
        upload_server: UploadServer, http_file: str, part: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    result = download(http_file, part, progress=lambda done, total: seen.append((done, total)))
    assert _digest(part) == DIGEST and (result.size, result.resumed_from, result.fetched) == (
        len(CONTENT), 0, len(CONTENT))
    assert _ranges(upload_server) == [None]
    assert len(seen) >= 3 and seen[-1] == (len(CONTENT), len(CONTENT))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_a_whole_file_arrives_over_ftp_in_binary(ftp_server: FtpServer, ftp_file: str, part: Path) -> None:
    result = download(ftp_file, part, timeout_s=5)
    assert _digest(part) == DIGEST and result.fetched == len(CONTENT)
    assert "TYPE I" in ftp_server.commands and _rests(ftp_server) == []


def test_an_http_body_cut_short_is_kept_and_resumed_with_a_range(
        upload_server: UploadServer, http_file: str, part: Path) -> None:
    upload_server.behaviour.cut_after = CUT
    with pytest.raises(DownloadError) as cut:
        download(http_file, part, timeout_s=5)
    assert cut.value.retryable and part.stat().st_size == CUT
    result = download(http_file, part, timeout_s=5)
    assert _ranges(upload_server) == [None, f"bytes={CUT}-"]
    assert _digest(part) == DIGEST and (result.resumed_from, result.fetched) == (CUT, len(CONTENT) - CUT)


def test_retries_resume_an_http_download_cut_on_the_first_attempt(
        upload_server: UploadServer, http_file: str, part: Path) -> None:
    upload_server.behaviour.cut_after = CUT
    failures: list[int] = []
    result = download_with_retries(http_file, part, attempts=3, retry_interval_s=0.05,
                                   on_failure=lambda attempt, _: failures.append(attempt))
    assert failures == [1] and _ranges(upload_server) == [None, f"bytes={CUT}-"]
    assert _digest(part) == DIGEST and result.resumed_from == CUT


def test_an_ftp_transfer_ended_early_is_resumed_with_rest(ftp_server: FtpServer, ftp_file: str,
                                                          part: Path) -> None:
    ftp_server.cut_after = CUT
    with pytest.raises(DownloadError) as cut:
        download(ftp_file, part, timeout_s=5)
    assert cut.value.retryable and part.stat().st_size == CUT
    result = download_with_retries(ftp_file, part, attempts=2, retry_interval_s=0.05, timeout_s=5)
    assert _rests(ftp_server) == [f"REST {CUT}"]
    assert _digest(part) == DIGEST and result.resumed_from == CUT


def test_a_server_that_ignores_range_restarts_the_file_cleanly(
        upload_server: UploadServer, http_file: str, part: Path) -> None:
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\xff" * 1000)  # not the server's first bytes: they must not survive
    upload_server.behaviour.ignore_range = True
    result = download(http_file, part, timeout_s=5)
    assert _ranges(upload_server) == ["bytes=1000-"]
    assert _digest(part) == DIGEST and (result.resumed_from, result.fetched) == (0, len(CONTENT))


def test_a_part_longer_than_the_servers_file_is_a_changed_file_started_over(
        upload_server: UploadServer, http_file: str, part: Path) -> None:
    part.parent.mkdir(parents=True)
    part.write_bytes(CONTENT + b"old version's tail")
    result = download(http_file, part, timeout_s=5)
    assert _ranges(upload_server) == [f"bytes={len(CONTENT) + 18}-", None]
    assert _digest(part) == DIGEST and result.resumed_from == 0


def test_a_changed_file_over_ftp_is_started_over_without_rest(ftp_server: FtpServer, ftp_file: str,
                                                               part: Path) -> None:
    part.parent.mkdir(parents=True)
    part.write_bytes(CONTENT + b"old version's tail")
    download(ftp_file, part, timeout_s=5)
    assert _digest(part) == DIGEST and _rests(ftp_server) == []


def test_a_complete_part_is_done_without_fetching_again(upload_server: UploadServer, http_file: str,
                                                        part: Path) -> None:
    part.parent.mkdir(parents=True)
    part.write_bytes(CONTENT)
    result = download(http_file, part, timeout_s=5)
    assert _ranges(upload_server) == [f"bytes={len(CONTENT)}-"]
    assert (result.size, result.fetched) == (len(CONTENT), 0) and _digest(part) == DIGEST


# ---- a file changed on the server between a cut and the resume (If-Range) ------------------

NEW_CONTENT = random.Random(8).randbytes(len(CONTENT))  # same size: only a validator tells it changed


def test_a_resume_sends_if_range_and_continues_an_unchanged_file(
        upload_server: UploadServer, http_file: str, part: Path) -> None:
    upload_server.behaviour.cut_after = CUT
    with pytest.raises(DownloadError):
        download(http_file, part, timeout_s=5)
    etag = validator_file(part).read_text()
    assert etag.startswith('"')

    result = download(http_file, part, timeout_s=5)

    assert upload_server.ranges() == [None, f"bytes={CUT}-"]
    assert upload_server.if_ranges() == [None, etag]
    assert _digest(part) == DIGEST and result.resumed_from == CUT
    assert not validator_file(part).exists()  # complete: the sidecar is gone


@pytest.mark.parametrize(("etag", "weak_etag"), [(True, False), (False, False), (True, True)],
                         ids=["etag", "last-modified only", "weak etag: last-modified"])
def test_a_file_changed_between_the_cut_and_the_resume_is_downloaded_whole_again(
        upload_server: UploadServer, http_file: str, part: Path, etag: bool, weak_etag: bool) -> None:
    upload_server.behaviour.etag, upload_server.behaviour.weak_etag = etag, weak_etag
    upload_server.behaviour.cut_after = CUT
    with pytest.raises(DownloadError):
        download(http_file, part, timeout_s=5)
    kept = validator_file(part).read_text()
    assert kept.startswith('"') if etag and not weak_etag else kept.endswith(" GMT")
    upload_server.files["/fw/update.bin"] = NEW_CONTENT

    result = download(http_file, part, timeout_s=5)

    assert upload_server.if_ranges() == [None, kept]
    assert upload_server.ranges() == [None, f"bytes={CUT}-"]
    assert _digest(part) == hashlib.sha256(NEW_CONTENT).hexdigest()
    assert (result.resumed_from, result.fetched) == (0, len(NEW_CONTENT))


def test_without_a_validator_the_range_goes_alone_as_before(
        upload_server: UploadServer, http_file: str, part: Path) -> None:
    upload_server.behaviour.etag = upload_server.behaviour.last_modified = False
    upload_server.behaviour.cut_after = CUT
    with pytest.raises(DownloadError):
        download(http_file, part, timeout_s=5)
    assert not validator_file(part).exists()

    result = download(http_file, part, timeout_s=5)

    assert upload_server.if_ranges() == [None, None] and upload_server.ranges() == [None, f"bytes={CUT}-"]
    assert _digest(part) == DIGEST and result.resumed_from == CUT


@pytest.mark.parametrize("kept", [b"", b'"abc"\r\nX-Injected: 1', b"\xff\xfe not text"])
def test_a_damaged_validator_file_is_ignored(upload_server: UploadServer, http_file: str, part: Path,
                                             kept: bytes) -> None:
    part.parent.mkdir(parents=True)
    part.write_bytes(CONTENT[:CUT])
    validator_file(part).write_bytes(kept)

    result = download(http_file, part, timeout_s=5)

    assert upload_server.if_ranges() == [None] and upload_server.ranges() == [f"bytes={CUT}-"]
    assert _digest(part) == DIGEST and result.resumed_from == CUT


def test_the_query_of_a_download_link_is_kept(upload_server: UploadServer, part: Path) -> None:
    upload_server.files["/fw.bin?token=a%2Fb"] = b"firmware"
    download(f"{upload_server.url}/fw.bin?token=a%2Fb", part, timeout_s=5)
    assert part.read_bytes() == b"firmware"


# ---- refusals, retries, cancel, limits ------------------------------------------------------


def test_a_missing_file_is_a_bad_request_tried_once(upload_server: UploadServer, part: Path) -> None:
    failures: list[int] = []
    with pytest.raises(DownloadError) as missing:
        download_with_retries(f"{upload_server.url}/nothing.bin", part, attempts=3, retry_interval_s=5,
                              on_failure=lambda attempt, _: failures.append(attempt))
    assert missing.value.failure is TransferFailure.BAD_REQUEST and not missing.value.retryable
    assert failures == [1] and len(upload_server.fetches) == 1


def test_a_missing_ftp_file_and_refused_credentials_are_not_retried(ftp_server: FtpServer, ftp_file: str,
                                                                     part: Path) -> None:
    with pytest.raises(DownloadError) as missing:
        download_with_retries(ftp_server.url("fw/other.bin"), part, attempts=3, retry_interval_s=5)
    assert missing.value.failure is TransferFailure.BAD_REQUEST
    with pytest.raises(DownloadError) as refused:
        download_with_retries(ftp_server.url("fw/update.bin", password="wrong"), part, attempts=3,
                              retry_interval_s=5)
    assert refused.value.failure is TransferFailure.PERMISSION_DENIED and not refused.value.retryable


def test_server_errors_are_retried_after_the_interval_until_one_succeeds(
        upload_server: UploadServer, http_file: str, part: Path) -> None:
    upload_server.behaviour.failures = 2
    started = time.monotonic()
    download_with_retries(http_file, part, attempts=3, retry_interval_s=0.2)
    assert time.monotonic() - started >= 0.4 and len(upload_server.fetches) == 3
    assert _digest(part) == DIGEST


def test_a_cancel_while_waiting_ends_the_retries(upload_server: UploadServer, http_file: str,
                                                 part: Path) -> None:
    upload_server.behaviour.failures = 5
    with pytest.raises(DownloadCancelled) as cancelled:
        download_with_retries(http_file, part, attempts=5, retry_interval_s=0.1,
                              cancelled=lambda: len(upload_server.fetches) >= 1)
    assert not cancelled.value.retryable and len(upload_server.fetches) == 1


def test_a_cancel_while_bytes_arrive_keeps_what_arrived(upload_server: UploadServer, http_file: str,
                                                        part: Path) -> None:
    with pytest.raises(DownloadCancelled):
        download(http_file, part, cancelled=lambda: part.exists() and part.stat().st_size > 0)
    assert 0 < part.stat().st_size < len(CONTENT)
    assert part.read_bytes() == CONTENT[:part.stat().st_size]


def test_a_file_over_the_size_cap_is_refused_and_not_retried(
        upload_server: UploadServer, http_file: str, part: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_module, "MAX_DOWNLOAD_BYTES", 1024 * 1024)
    with pytest.raises(DownloadError) as too_big:
        download_with_retries(http_file, part, attempts=3, retry_interval_s=5)
    assert not too_big.value.retryable and len(upload_server.fetches) == 1
    assert part.stat().st_size == 0


@pytest.mark.parametrize(("location", "failure"), [
    ("sftp://host/fw.bin", TransferFailure.UNSUPPORTED_PROTOCOL),
    ("file:///etc/passwd", TransferFailure.UNSUPPORTED_PROTOCOL),
    ("http:///fw.bin", TransferFailure.BAD_REQUEST),
])
def test_unusable_locations_are_refused_before_connecting(location: str, failure: TransferFailure,
                                                          part: Path) -> None:
    with pytest.raises(DownloadError) as refused:
        download_with_retries(location, part, attempts=3, retry_interval_s=5)
    assert refused.value.failure is failure and not refused.value.retryable


def test_credentials_are_used_but_never_logged(upload_server: UploadServer, http_file: str, part: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    upload_server.behaviour.password = ("station", "pa55word")
    with_password = http_file.replace("http://", "http://station:pa55word@")
    download(with_password, part, timeout_s=5)
    with pytest.raises(DownloadError) as refused:
        download_with_retries(with_password.replace("pa55word", "wr0ng"), part, attempts=2,
                              retry_interval_s=0.05, on_failure=lambda _, error: logging.warning("%s", error))
    assert _digest(part) == DIGEST and refused.value.failure is TransferFailure.PERMISSION_DENIED
    assert "station@" in caplog.text
    assert "pa55word" not in caplog.text and "wr0ng" not in caplog.text and "wr0ng" not in str(refused.value)


# ---- FTPS -----------------------------------------------------------------------------------


@pytest.fixture
def ftps_file(ftps_server: FtpServer) -> str:
    (ftps_server.root / "fw").mkdir()
    (ftps_server.root / "fw" / "update.bin").write_bytes(CONTENT)
    return ftps_server.url("fw/update.bin")


def test_ftps_downloads_and_resumes_over_a_protected_data_channel(ftps_server: FtpServer, ftps_file: str,
                                                                  part: Path) -> None:
    ftps_server.cut_after = CUT
    result = download_with_retries(ftps_file, part, attempts=2, retry_interval_s=0.05, timeout_s=5,
                                   ssl_context=ftps_server.ssl_context)
    assert _digest(part) == DIGEST and result.resumed_from == CUT
    assert "PROT P" in ftps_server.commands and _rests(ftps_server) == [f"REST {CUT}"]


def test_an_ftps_certificate_outside_the_trust_store_is_refused(ftps_server: FtpServer, ftps_file: str,
                                                                part: Path) -> None:
    with pytest.raises(DownloadError) as untrusted:
        download_with_retries(ftps_file, part, attempts=3, retry_interval_s=5, timeout_s=5)
    assert "not trusted" in str(untrusted.value) and not untrusted.value.retryable
    assert not part.stat().st_size
