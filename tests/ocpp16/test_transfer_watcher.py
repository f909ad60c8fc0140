"""The file transfer requests' status notifications at their edges (workers/ocpp16/
transfer_jobs.py, firmware.py, diagnostics.py), with ocpp16 as a real process and no jobs
service: the test publishes the jobs' steps on the bus and writes their rows itself, so it
decides what ocpp16 finds, and when.
- steps and the row's end both waiting when ocpp16 starts: the steps win over the row,
- TriggerMessage during a step OCPP 1.6 has no status for,
- a job whose row the database refuses (its table dropped)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ocpp.v16 import call

from bus import Bus, contract
from bus.messages import FileTransferProgress, TransferFailure, TransferStatus
from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.database import query
from tests.support.waiting import async_wait_until
from workers.ocpp16.payloads import ocpp_time
from workers.sim.csms import Csms

UNREACHABLE = "127.0.0.1:1"  # never fetched: no jobs service runs


async def _online(csms: Csms, start_ocpp16, stage: int = 1):
    process = start_ocpp16(csms.url)
    await csms.wait_for_call("StatusNotification", count=3 * stage, timeout_s=20)
    return process


def _state(service_db: Path, name: str) -> dict:
    rows = query(service_db, "SELECT value FROM station_ocppstate WHERE name = ?", name)
    return (json.loads(rows[0]["value"]) or {}) if rows else {}


async def _job_of(service_db: Path, name: str) -> int:
    async def started() -> bool:
        return bool(_state(service_db, name).get("job_id"))
    await async_wait_until(started, timeout_s=10, what=f"the job of {name}")
    return _state(service_db, name)["job_id"]


Step = TransferStatus | tuple[TransferStatus, TransferFailure]


async def _publish(bus: Bus, job_id: int, *steps: Step) -> None:
    for step in steps:
        status, failure = step if isinstance(step, tuple) else (step, None)
        await bus.publish(contract.FILE_TRANSFERS, FileTransferProgress(job_id=job_id, status=status,
                                                                        failure=failure, detail="test"))


def _update_firmware() -> call.UpdateFirmware:
    return call.UpdateFirmware(location=f"https://{UNREACHABLE}/fw.bin",
                               retrieve_date=ocpp_time(datetime.now(UTC)), retries=1)


def _get_log(request_id: int) -> call.GetLog:
    return call.GetLog(log={"remote_location": f"http://{UNREACHABLE}/logs/"}, log_type="DiagnosticsLog",
                       request_id=request_id, retries=1)


async def test_steps_read_after_a_restart_win_over_the_ended_row(csms: Csms, start_ocpp16, bus: Bus,
                                                                 service_db: Path) -> None:
    """The jobs report InvalidSignature / UploadFailed(permission denied) and end their rows
    FAILED while ocpp16 is down: once back, the CSMS hears what the jobs said (and the security
    event), not what a failed row alone would say (DownloadFailed, UploadFailure)."""
    process = await _online(csms, start_ocpp16)
    await csms.send(CHARGE_POINT_ID, _update_firmware())
    await csms.send(CHARGE_POINT_ID, _get_log(4))
    firmware_job = await _job_of(service_db, "firmware_request")
    log_job = await _job_of(service_db, "log_upload")
    assert await process.stopped() == 0

    await _publish(bus, firmware_job, TransferStatus.DOWNLOADING, TransferStatus.DOWNLOADED,
                   TransferStatus.INVALID_SIGNATURE)
    await _publish(bus, log_job, TransferStatus.UPLOADING,
                   (TransferStatus.UPLOAD_FAILED, TransferFailure.PERMISSION_DENIED))
    query(service_db, "UPDATE station_jobrecord SET status = 'failed' WHERE id IN (?, ?)",
          firmware_job, log_job)
    await _online(csms, start_ocpp16, stage=2)

    await csms.wait_for_call("FirmwareStatusNotification", count=3, timeout_s=10)
    await csms.wait_for_call("LogStatusNotification", count=2, timeout_s=10)
    assert [c.payload["status"] for c in csms.calls("FirmwareStatusNotification")] == [
        "Downloading", "Downloaded", "InstallationFailed"]  # InvalidSignature in OCPP 1.6 terms
    assert [c.payload for c in csms.calls("LogStatusNotification")] == [
        {"status": "Uploading", "requestId": 4}, {"status": "PermissionDenied", "requestId": 4}]

    async def security_event() -> bool:
        events = csms.calls("SecurityEventNotification")
        return any(c.payload["type"] == "InvalidFirmwareSignature" for c in events)
    await async_wait_until(security_event, timeout_s=10, what="the InvalidFirmwareSignature security event")


async def test_trigger_during_a_step_without_a_1_6_status_answers_the_last_one_sent(
        csms: Csms, start_ocpp16, bus: Bus, service_db: Path) -> None:
    """SignatureVerified has no OCPP 1.6 status: the update is still in progress, so the
    triggered FirmwareStatusNotification says Downloaded (the last status sent), not Idle."""
    await _online(csms, start_ocpp16)
    await csms.send(CHARGE_POINT_ID, _update_firmware())
    job = await _job_of(service_db, "firmware_request")
    await _publish(bus, job, TransferStatus.DOWNLOADING, TransferStatus.DOWNLOADED,
                   TransferStatus.SIGNATURE_VERIFIED)

    async def verified() -> bool:
        return _state(service_db, "firmware_request").get("status") == "SignatureVerified"
    await async_wait_until(verified, timeout_s=10, what="SignatureVerified recorded")
    await csms.send(CHARGE_POINT_ID, call.TriggerMessage(requested_message="FirmwareStatusNotification"))
    await csms.wait_for_call("FirmwareStatusNotification", count=3)
    assert [c.payload["status"] for c in csms.calls("FirmwareStatusNotification")] == [
        "Downloading", "Downloaded", "Downloaded"]


async def test_a_job_the_database_refuses_ends_its_request_failed(csms: Csms, start_ocpp16,
                                                                  service_db: Path) -> None:
    """The job rows' table is gone: every request was answered, so each gets its failed status
    rather than none at all."""
    query(service_db, "DROP TABLE station_jobrecord")
    await _online(csms, start_ocpp16)

    diagnostics = await csms.send(CHARGE_POINT_ID, call.GetDiagnostics(location=f"http://{UNREACHABLE}/"))
    assert diagnostics.file_name
    get_log = await csms.send(CHARGE_POINT_ID, _get_log(5))
    assert str(get_log.status) == "Accepted"
    await csms.send(CHARGE_POINT_ID, _update_firmware())

    assert (await csms.wait_for_call("DiagnosticsStatusNotification")).payload == {"status": "UploadFailed"}
    assert (await csms.wait_for_call("LogStatusNotification")).payload == {"status": "UploadFailure",
                                                                            "requestId": 5}
    assert (await csms.wait_for_call("FirmwareStatusNotification")).payload == {"status": "DownloadFailed"}
    assert _state(service_db, "firmware_request")["done"] is True
