"""Uploads to a real HTTP server (workers/jobs/upload.py) and the DIAGNOSTICS_UPLOAD and
FIRMWARE_UPDATE jobs through RQ (an in-process worker on the test Redis), with the steps they
report on the bus. FTP uploads are tested in test_upload_ftp.py (a real pyftpdlib server)."""

from __future__ import annotations

import csv
import io
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bus.messages import FileTransferProgress, TransferFailure, TransferStatus
from tests.jobs.conftest import RANGE_END, RANGE_START
from tests.support.transfers import transfer_steps
from tests.support.upload_server import UploadServer
from webapp.station.models import JobRecord, SecurityEvent
from workers.common.redis_server import free_port
from workers.jobs import api
from workers.jobs.upload import UploadError, parse_location, upload, upload_with_retries

CONTENT = b"diagnostics \x00\x01\x02 " * 1000


@pytest.fixture
def file(tmp_path: Path) -> Path:
    path = tmp_path / "diagnostics-test.zip"
    path.write_bytes(CONTENT)
    return path


# ---- upload.py ------------------------------------------------------------------------------


def test_a_put_lands_in_the_location_folder(upload_server: UploadServer, file: Path) -> None:
    where = upload(file, f"{upload_server.url}/incoming/")
    (received,) = upload_server.received
    assert (received.method, received.path) == ("PUT", "/incoming/diagnostics-test.zip")
    assert received.body == CONTENT
    assert where == f"http://127.0.0.1:{upload_server.port}/incoming/diagnostics-test.zip"


def test_a_server_refusing_put_gets_a_multipart_form(upload_server: UploadServer, file: Path) -> None:
    upload_server.behaviour.refuse_put = True
    upload(file, f"{upload_server.url}/upload.php")
    (received,) = upload_server.received
    assert (received.method, received.path) == ("POST", "/upload.php")
    assert received.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="diagnostics-test.zip"' in received.body and CONTENT in received.body


def test_credentials_in_the_url_are_sent_and_never_shown(upload_server: UploadServer, file: Path) -> None:
    upload_server.behaviour.password = ("diag", "s3cr:et")
    where = upload(file, f"http://diag:s3cr%3Aet@127.0.0.1:{upload_server.port}/up/")
    assert upload_server.received and "s3cr" not in where
    with pytest.raises(UploadError) as refused:
        upload(file, f"http://diag:wrong@127.0.0.1:{upload_server.port}/up/")
    assert refused.value.failure is TransferFailure.PERMISSION_DENIED and "wrong" not in str(refused.value)


def test_a_failing_server_is_tried_again_until_the_attempts_are_used(upload_server: UploadServer,
                                                                     file: Path) -> None:
    upload_server.behaviour.failures = 2
    failures: list[int] = []
    upload_with_retries(file, upload_server.url, attempts=3, retry_interval_s=0.05,
                        on_failure=lambda attempt, _: failures.append(attempt))
    assert failures == [1, 2] and len(upload_server.received) == 1

    upload_server.behaviour.failures = 5
    with pytest.raises(UploadError) as failed:
        upload_with_retries(file, upload_server.url, attempts=2, retry_interval_s=0.05)
    assert failed.value.failure is TransferFailure.TRANSFER_FAILED and "HTTP 500" in str(failed.value)
    assert upload_server.attempts == 5  # 3 + 2: no third attempt


def test_refused_credentials_are_not_tried_again(upload_server: UploadServer, file: Path) -> None:
    upload_server.behaviour.password = ("diag", "right")
    with pytest.raises(UploadError):
        upload_with_retries(file, f"http://diag:wrong@127.0.0.1:{upload_server.port}/", attempts=3,
                            retry_interval_s=5)
    assert upload_server.attempts == 1


def test_a_cancelled_upload_stops_waiting_for_its_next_attempt(upload_server: UploadServer,
                                                               file: Path) -> None:
    upload_server.behaviour.failures = 10
    started = time.monotonic()
    with pytest.raises(UploadError, match="cancelled"):
        upload_with_retries(file, upload_server.url, attempts=5, retry_interval_s=30, cancelled=lambda: True)
    assert time.monotonic() - started < 5 and upload_server.attempts == 1


def test_a_server_that_is_not_there_is_a_failed_transfer(file: Path) -> None:
    with pytest.raises(UploadError) as failed:
        upload(file, f"http://127.0.0.1:{free_port()}/", timeout_s=2)
    assert failed.value.failure is TransferFailure.TRANSFER_FAILED and failed.value.retryable


@pytest.mark.parametrize("location, failure", [
    ("sftp://host/dir/", TransferFailure.UNSUPPORTED_PROTOCOL),
    ("file:///etc/", TransferFailure.UNSUPPORTED_PROTOCOL),
    ("not a url", TransferFailure.UNSUPPORTED_PROTOCOL),
    ("", TransferFailure.UNSUPPORTED_PROTOCOL),
    ("http:///no-host", TransferFailure.BAD_REQUEST),
    ("ftp://host:99999/", TransferFailure.BAD_REQUEST),
    ("http://[::1/", TransferFailure.BAD_REQUEST),
])
def test_unusable_locations_are_refused_before_any_connection(location: str,
                                                              failure: TransferFailure) -> None:
    with pytest.raises(UploadError) as refused:
        parse_location(location)
    assert refused.value.failure is failure and not refused.value.retryable


def test_an_ftp_location_is_read_with_its_credentials_and_folder() -> None:
    target = parse_location("ftps://user:p%40ss@files.example.com:2121/diag/station%201/")
    assert (target.scheme, target.host, target.port, target.username, target.password, target.path) == (
        "ftps", "files.example.com", 2121, "user", "p@ss", "diag/station 1")
    assert target.describe() == "ftps://user@files.example.com:2121/diag/station 1"


# ---- the jobs --------------------------------------------------------------------------------


def _steps(job_id: int) -> list[FileTransferProgress]:
    return transfer_steps(job_id)


def _upload_request(location: str, content: api.UploadContent = api.UploadContent.DIAGNOSTICS,
                    attempts: int = 1) -> api.UploadRequest:
    return api.UploadRequest(content=content, start=RANGE_START, end=RANGE_END,
                             file_name=api.file_name_for(content, RANGE_START, RANGE_END), location=location,
                             attempts=attempts, retry_interval_s=0)


@pytest.mark.django_db
def test_the_upload_job_builds_the_archive_uploads_it_and_reports_each_step(
        station_env, sessions, log_files, run_worker, upload_server: UploadServer,
        django_capture_on_commit_callbacks) -> None:
    """OCTT TC_045_1_CS (jobs side): the archive of the range reaches the server."""
    request = _upload_request(f"{upload_server.url}/diag/")
    with django_capture_on_commit_callbacks(execute=True):
        record = api.request_upload(request)
    assert run_worker()

    record.refresh_from_db()
    assert record.status == JobRecord.Status.FINISHED, record.log
    (received,) = upload_server.received
    assert received.path == f"/diag/{request.file_name}"
    with zipfile.ZipFile(io.BytesIO(received.body)) as archive:
        assert {"sessions.csv", "station.json", "logs/info.log"} <= set(archive.namelist())
    assert [step.status for step in _steps(record.pk)] == [TransferStatus.UPLOADING, TransferStatus.UPLOADED]


@pytest.mark.django_db
def test_the_security_log_holds_the_events_of_the_range(station_env, run_worker, upload_server: UploadServer,
                                                        django_capture_on_commit_callbacks) -> None:
    for at, event_type in ((RANGE_START - timedelta(minutes=1), "StartupOfTheDevice"),
                           (RANGE_START + timedelta(minutes=5), "InvalidFirmwareSignature"),
                           (RANGE_END, "ResetOrReboot"),
                           (RANGE_END + timedelta(seconds=1), "SettingSystemTime")):
        SecurityEvent.objects.create(at=at, type=event_type, tech_info="why, \"quoted\"")
    with django_capture_on_commit_callbacks(execute=True):
        record = api.request_upload(_upload_request(upload_server.url, api.UploadContent.SECURITY_LOG))
    run_worker()

    (received,) = upload_server.received
    rows = list(csv.DictReader(io.StringIO(received.body.decode())))
    assert [row["type"] for row in rows] == ["InvalidFirmwareSignature", "ResetOrReboot"]
    assert rows[0]["timestamp"] == (RANGE_START + timedelta(minutes=5)).isoformat()
    assert rows[0]["techInfo"] == 'why, "quoted"' and rows[0]["critical"] == "false"
    assert received.path.endswith(".csv") and _steps(record.pk)[-1].status is TransferStatus.UPLOADED


@pytest.mark.django_db
def test_a_failed_upload_fails_the_job_and_reports_why(station_env, run_worker, upload_server: UploadServer,
                                                       django_capture_on_commit_callbacks) -> None:
    """OCTT TC_045_2_CS (jobs side): every attempt fails -> UploadFailed."""
    upload_server.behaviour.failures = 2
    with django_capture_on_commit_callbacks(execute=True):
        record = api.request_upload(_upload_request(upload_server.url, attempts=2))
    run_worker()

    record.refresh_from_db()
    assert record.status == JobRecord.Status.FAILED and "attempt 1 of 2 failed" in record.log
    steps = _steps(record.pk)
    assert [step.status for step in steps] == [TransferStatus.UPLOADING, TransferStatus.UPLOAD_FAILED]
    assert steps[-1].failure is TransferFailure.TRANSFER_FAILED and "HTTP 500" in steps[-1].detail


@pytest.mark.django_db
def test_a_cancelled_job_does_not_run_and_keeps_its_reason(station_env, queue, run_worker,
                                                           upload_server: UploadServer,
                                                           django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        record = api.request_upload(_upload_request(upload_server.url))
    assert api.cancel(record.pk, "replaced by a newer request")
    assert not api.cancel(record.pk, "again")
    run_worker()

    record.refresh_from_db()
    assert record.status == JobRecord.Status.FAILED and "cancelled: replaced by a newer request" in record.log
    assert upload_server.attempts == 0 and api.job_status(record.pk) == JobRecord.Status.FAILED


@pytest.mark.django_db
def test_the_firmware_job_on_the_queue_reports_download_failed_when_nothing_answers(
        station_env, run_worker, django_capture_on_commit_callbacks) -> None:
    """The FIRMWARE_UPDATE job through the real RQ worker (the job: tests/fota/test_update_job.py)."""
    request = api.FirmwareRequest(location="https://127.0.0.1:1/fw.bin",
                                  retrieve_at=datetime.now(UTC), attempts=1, retry_interval_s=0)
    with django_capture_on_commit_callbacks(execute=True):
        record = api.request_firmware_update(request)
    run_worker()

    record.refresh_from_db()
    assert record.status == JobRecord.Status.FAILED and "DownloadFailed" in record.log
    downloading, failed = _steps(record.pk)
    assert downloading.status == TransferStatus.DOWNLOADING
    assert failed.status == TransferStatus.DOWNLOAD_FAILED
    assert failed.failure == TransferFailure.TRANSFER_FAILED


def test_bad_upload_requests_are_refused_before_a_job_is_made() -> None:
    with pytest.raises(ValueError, match="must be before end"):
        api.UploadRequest(content="diagnostics", start=RANGE_END, end=RANGE_START, file_name="a.zip",
                          location="http://h/", attempts=1, retry_interval_s=0)
    with pytest.raises(ValueError, match="file_name"):
        api.UploadRequest(content="diagnostics", start=RANGE_START, end=RANGE_END, file_name="../etc/passwd",
                          location="http://h/", attempts=1, retry_interval_s=0)
    with pytest.raises(ValueError, match="attempts"):
        api.UploadRequest(content="diagnostics", start=RANGE_START, end=RANGE_END, file_name="a.zip",
                          location="http://h/", attempts=0, retry_interval_s=0)
