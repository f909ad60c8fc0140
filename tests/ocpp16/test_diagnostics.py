"""GetDiagnostics and GetLog end to end: ocpp16 and the jobs service as real processes on one
database, a real HTTP server receiving the upload, the CSMS hearing each step
(workers/ocpp16/diagnostics.py, workers/jobs/diagnostics_upload.py). FTP uploads are not
covered: no FTP server package (pyftpdlib) is installed."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.upload_server import UploadServer
from tests.support.waiting import async_wait_until
from workers.ocpp16.payloads import ocpp_time
from workers.sim.csms import Csms


async def _online(csms: Csms, start_ocpp16, start_jobs) -> None:
    start_jobs(start_ocpp16(csms.url))
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)


def _statuses(csms: Csms, action: str) -> list[dict]:
    return [c.payload for c in csms.calls(action)]


async def test_get_diagnostics_uploads_the_archive_and_reports_uploading_then_uploaded(
        csms: Csms, start_ocpp16, start_jobs, upload_server: UploadServer) -> None:
    """OCTT TC_045_1_CS: fileName in the answer, the file uploaded, Uploading -> Uploaded."""
    await _online(csms, start_ocpp16, start_jobs)
    now = datetime.now(UTC)

    answer = await csms.send(CHARGE_POINT_ID, call.GetDiagnostics(
        location=f"{upload_server.url}/diagnostics/", retries=1, retry_interval=0,
        start_time=ocpp_time(now - timedelta(hours=1)), stop_time=ocpp_time(now)))
    assert answer.file_name.startswith("diagnostics-") and answer.file_name.endswith(".zip")

    await csms.wait_for_call("DiagnosticsStatusNotification", count=2, timeout_s=20)
    assert _statuses(csms, "DiagnosticsStatusNotification") == [{"status": "Uploading"},
                                                                {"status": "Uploaded"}]
    (received,) = upload_server.received
    assert received.path == f"/diagnostics/{answer.file_name}"
    with zipfile.ZipFile(io.BytesIO(received.body)) as archive:
        assert {"sessions.csv", "station.json"} <= set(archive.namelist())
        assert any(name.startswith("logs/") for name in archive.namelist())  # ocpp16's own log files


async def test_an_upload_that_keeps_failing_is_reported_upload_failed(
        csms: Csms, start_ocpp16, start_jobs, upload_server: UploadServer) -> None:
    """OCTT TC_045_2_CS: retries used up -> UploadFailed."""
    upload_server.behaviour.failures = 100
    await _online(csms, start_ocpp16, start_jobs)

    answer = await csms.send(CHARGE_POINT_ID, call.GetDiagnostics(location=upload_server.url, retries=2,
                                                                  retry_interval=0))
    assert answer.file_name
    await csms.wait_for_call("DiagnosticsStatusNotification", count=2, timeout_s=20)
    assert _statuses(csms, "DiagnosticsStatusNotification") == [{"status": "Uploading"},
                                                                {"status": "UploadFailed"}]
    assert upload_server.attempts == 2 and not upload_server.received


async def test_get_log_uploads_the_security_log_and_a_new_request_cancels_the_running_one(
        csms: Csms, start_ocpp16, start_jobs, upload_server: UploadServer) -> None:
    """OCTT TC_079_CS: GetLog(SecurityLog) -> Accepted with a filename, LogStatusNotification
    Uploading -> Uploaded with the requestId; the log holds the station's security events. A
    GetLog while one uploads -> AcceptedCanceled, and the first never reports again."""
    upload_server.behaviour.failures = 1  # the first request's first attempt, then it waits
    await _online(csms, start_ocpp16, start_jobs)
    await csms.wait_for_call("SecurityEventNotification")  # StartupOfTheDevice is in the log
    log_window = {"remote_location": f"{upload_server.url}/logs/",
                  "oldest_timestamp": ocpp_time(datetime.now(UTC) - timedelta(hours=1))}

    first = await csms.send(CHARGE_POINT_ID, call.GetLog(log=log_window, log_type="SecurityLog", request_id=7,
                                                         retries=3, retry_interval=60))
    assert str(first.status) == "Accepted" and first.filename.endswith(".csv")

    async def first_attempt_failed() -> bool:
        return upload_server.attempts >= 1
    await async_wait_until(first_attempt_failed, timeout_s=20, what="the first upload attempt")
    second = await csms.send(CHARGE_POINT_ID, call.GetLog(log=log_window, log_type="SecurityLog",
                                                          request_id=8, retries=1, retry_interval=0))
    assert str(second.status) == "AcceptedCanceled" and second.filename != first.filename

    await csms.wait_for_call("LogStatusNotification", count=3, timeout_s=20)
    assert _statuses(csms, "LogStatusNotification") == [
        {"status": "Uploading", "requestId": 7}, {"status": "Uploading", "requestId": 8},
        {"status": "Uploaded", "requestId": 8}]
    (received,) = upload_server.received
    assert received.path == f"/logs/{second.filename}"
    events = [row["type"] for row in csv.DictReader(io.StringIO(received.body.decode()))]
    assert "StartupOfTheDevice" in events


async def test_requests_that_cannot_be_carried_out_are_refused(csms: Csms, start_ocpp16, start_jobs) -> None:
    await _online(csms, start_ocpp16, start_jobs)
    now = datetime.now(UTC)

    backwards = await csms.send(CHARGE_POINT_ID, call.GetDiagnostics(
        location="http://127.0.0.1:9/", start_time=ocpp_time(now),
        stop_time=ocpp_time(now - timedelta(hours=1))))
    assert backwards.file_name is None  # nothing to upload
    unsupported = await csms.send(CHARGE_POINT_ID, call.GetDiagnostics(location="sftp://files.example.com/"))
    assert unsupported.file_name is None
    rejected = await csms.send(CHARGE_POINT_ID, call.GetLog(log={"remote_location": "mailto:ops@example.com"},
                                                            log_type="DiagnosticsLog", request_id=1))
    assert (str(rejected.status), rejected.filename) == ("Rejected", None)
    with pytest.raises(OCPPError) as negative:
        await csms.send(CHARGE_POINT_ID, call.GetDiagnostics(location="http://127.0.0.1:9/", retries=-1))
    assert negative.value.code == "PropertyConstraintViolation"
    with pytest.raises(OCPPError) as bad_time:
        await csms.send(CHARGE_POINT_ID, call.GetDiagnostics(location="http://127.0.0.1:9/",
                                                             start_time="yesterday"))
    assert bad_time.value.code in ("FormationViolation", "FormatViolation")
    assert not csms.calls("DiagnosticsStatusNotification") and not csms.calls("LogStatusNotification")
