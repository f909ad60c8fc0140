"""GetDiagnostics and GetLog (OCPP 1.6 §4.4, §5.9, §7.24; Security Whitepaper ed.2 N01), the
OCPP side: the file is built and uploaded by a DIAGNOSTICS_UPLOAD job (workers/jobs/
diagnostics_upload.py) in the jobs service, so a slow upload never holds up the CSMS link.

The handler checks the request and answers; the job starts only once that answer has left
(`start`, from the handler's @after), so its first step can never overtake the answer.
- GetDiagnostics: `fileName` is the archive's name, absent when there is nothing to upload (a
  range that ends before it starts, a location the station cannot upload to). The job's steps
  become DiagnosticsStatusNotification: Uploading, then Uploaded or UploadFailed.
- GetLog: DiagnosticsLog is the same archive, SecurityLog the security log (table
  SecurityEvent). Rejected for an unusable location or range; AcceptedCanceled when it replaces
  a GetLog still uploading (that job is cancelled). LogStatusNotification with the requestId:
  Uploading, then Uploaded or BadMessage / NotSupportedOperation / PermissionDenied / UploadFailure.
One upload of each kind at a time, each recorded in OcppState (`diagnostics_upload`,
`log_upload`); notifications go through the persisted lane, so a restart loses none. A job
that died or whose report was lost is ended from its row (transfer_jobs.TransferWatcher). A
job that cannot even be started (the database refuses its row) ends the request at once:
UploadFailed / UploadFailure, so the CSMS is not left waiting for a status that never comes.
TriggerMessage: Uploading while an upload is in progress, otherwise Idle (Idle is only ever
sent when triggered).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from django.db import DatabaseError
from ocpp.v16.enums import Action, DiagnosticsStatus, Log, LogStatus, UploadLogStatus
from pydantic import ValidationError

from bus import Bus
from bus.messages import FileTransferProgress, TransferFailure, TransferStatus, utcnow
from webapp.station.models import JobRecord
from workers.jobs import api as jobs
from workers.jobs.archive import describe
from workers.jobs.upload import UploadError, parse_location
from workers.ocpp16.notices import Notices
from workers.ocpp16.persisted import read_state, write_state
from workers.ocpp16.transfer_jobs import (
    ENDED_BADLY,
    TransferWatcher,
    attempts_and_interval,
    cancel_job,
    job_status,
    start_job,
)

log = logging.getLogger(__name__)

GROUP = "ocpp16-diagnostics"
ALL_TIME_START = datetime(2000, 1, 1, tzinfo=UTC)  # no start given: everything kept, every log file
MAX_PLANNED = 10  # answers whose @after never ran (the answer could not be sent) are forgotten
UPLOAD_STEPS = frozenset({TransferStatus.UPLOADING, TransferStatus.UPLOADED, TransferStatus.UPLOAD_FAILED})
LOG_FAILURES = {
    TransferFailure.BAD_REQUEST: UploadLogStatus.bad_message,
    TransferFailure.UNSUPPORTED_PROTOCOL: UploadLogStatus.not_supported_operation,
    TransferFailure.PERMISSION_DENIED: UploadLogStatus.permission_denied,
}


class Slot(StrEnum):
    """One upload of each kind at a time; the value is its OcppState name."""

    DIAGNOSTICS = "diagnostics_upload"
    LOG = "log_upload"


@dataclass(frozen=True)
class Upload:
    """An upload started for the CSMS, as recorded in OcppState."""

    job_id: int
    file_name: str
    request_id: int | None = None  # GetLog's requestId
    status: str | None = None  # the last status the CSMS was told
    done: bool = False


@dataclass(frozen=True)
class Planned:
    """An accepted request whose job starts after the answer."""

    slot: Slot
    request: jobs.UploadRequest
    request_id: int | None


def upload_request(content: jobs.UploadContent, location: str, start: datetime | None, end: datetime | None,
                   attempts: int, interval: int) -> jobs.UploadRequest | str:
    """The job's request, or why there is nothing to upload."""
    try:
        parse_location(location)
    except UploadError as error:
        return str(error)
    first, last = start or ALL_TIME_START, end or utcnow()
    try:
        return jobs.UploadRequest(content=content, start=first, end=last, all_logs=start is None,
                                  file_name=jobs.file_name_for(content, first, last), location=location,
                                  attempts=attempts, retry_interval_s=interval)
    except ValidationError as error:
        return describe(error)


class Diagnostics:
    def __init__(self, bus: Bus, notices: Notices) -> None:
        self._notices = notices
        self._uploads: dict[Slot, Upload] = {}
        self._planned: dict[str, Planned] = {}
        self._lock = asyncio.Lock()
        self._loaded = False
        self._watcher = TransferWatcher(bus, GROUP, self._progress, self._check)

    async def run(self) -> None:
        await self._load()
        await self._watcher.run()

    async def _load(self) -> None:
        if self._loaded:
            return
        for slot in Slot:
            state = await read_state(slot)
            try:
                if state is not None:
                    self._uploads[slot] = Upload(**state)
            except TypeError as error:  # written by another version, or damaged
                log.error("%s cannot be read and is dropped: %s", slot, error)
                await write_state(slot, None)
        self._loaded = True

    # ---- for the handlers ----------------------------------------------------------------------

    def plan_diagnostics(self, call_id: str, location: str, retries: int | None,
                               retry_interval: int | None, start: datetime | None,
                               stop: datetime | None) -> str | None:
        """GetDiagnostics: the file name, or None when nothing will be uploaded."""
        attempts, interval = attempts_and_interval(retries, retry_interval)
        request = upload_request(jobs.UploadContent.DIAGNOSTICS, location, start, stop, attempts, interval)
        if isinstance(request, str):
            log.warning("GetDiagnostics: nothing to upload: %s", request)
            return None
        self._plan(call_id, Planned(Slot.DIAGNOSTICS, request, None))
        log.info("GetDiagnostics: %s, %d attempt(s) %d s apart", request.file_name, attempts, interval)
        return request.file_name

    async def plan_log(self, call_id: str, log_type: str, request_id: int, location: str,
                       oldest: datetime | None, latest: datetime | None, retries: int | None,
                       retry_interval: int | None) -> tuple[LogStatus, str | None]:
        """GetLog: (status, file name)."""
        await self._load()
        attempts, interval = attempts_and_interval(retries, retry_interval)
        security = log_type == Log.security_log
        content = jobs.UploadContent.SECURITY_LOG if security else jobs.UploadContent.DIAGNOSTICS
        request = upload_request(content, location, oldest, latest, attempts, interval)
        if isinstance(request, str):
            log.warning("GetLog %s (requestId %s) Rejected: %s", log_type, request_id, request)
            return LogStatus.rejected, None
        running = self._uploads.get(Slot.LOG)
        replaces = (running is not None and not running.done) or any(
            planned.slot is Slot.LOG for planned in self._planned.values())
        self._plan(call_id, Planned(Slot.LOG, request, request_id))
        log.info("GetLog %s (requestId %s): %s%s", log_type, request_id, request.file_name,
                 "; the upload in progress is cancelled" if replaces else "")
        return (LogStatus.accepted_canceled if replaces else LogStatus.accepted), request.file_name

    def _plan(self, call_id: str, planned: Planned) -> None:
        self._planned[call_id] = planned
        for stale in list(self._planned)[:-MAX_PLANNED]:
            del self._planned[stale]

    async def start(self, call_id: str) -> None:
        """After the answer: cancel the upload it replaces, start its job."""
        planned = self._planned.pop(call_id, None)
        if planned is None:
            return
        async with self._lock:
            await self._load()
            previous = self._uploads.get(planned.slot)
            if previous is not None and not previous.done:
                await cancel_job(previous.job_id, "replaced by a newer request from the CSMS")
            upload = Upload(0, planned.request.file_name, planned.request_id)
            try:
                job_id = await start_job(lambda: jobs.request_upload(planned.request), planned.slot,
                                         lambda job_id: asdict(replace(upload, job_id=job_id)))
            except DatabaseError as error:
                log.error("%s: the upload of %s could not be started: %s", planned.slot,
                          planned.request.file_name, error)
                await self._tell(planned.slot, upload, TransferStatus.UPLOAD_FAILED,
                                 TransferFailure.TRANSFER_FAILED, f"the job could not be started: {error}")
                return
            self._uploads[planned.slot] = replace(upload, job_id=job_id)
        log.info("%s: job #%s uploads %s", planned.slot, job_id, planned.request.file_name)

    def triggered_diagnostics_status(self) -> DiagnosticsStatus:
        return DiagnosticsStatus.uploading if self._in_progress(Slot.DIAGNOSTICS) else DiagnosticsStatus.idle

    def triggered_log_status(self) -> tuple[UploadLogStatus, int | None]:
        upload = self._uploads.get(Slot.LOG)
        if upload is not None and not upload.done:
            return UploadLogStatus.uploading, upload.request_id
        return UploadLogStatus.idle, None

    def _in_progress(self, slot: Slot) -> bool:
        upload = self._uploads.get(slot)
        return upload is not None and not upload.done

    # ---- the jobs' steps -----------------------------------------------------------------------

    async def _progress(self, step: FileTransferProgress) -> None:
        if step.status not in UPLOAD_STEPS:
            return
        async with self._lock:
            for slot, upload in self._uploads.items():
                if upload.job_id == step.job_id and not upload.done and upload.status != step.status:
                    await self._tell(slot, upload, step.status, step.failure, step.detail)

    async def _check(self) -> None:
        async with self._lock:
            for slot, upload in list(self._uploads.items()):
                if upload.done:
                    continue
                status = await job_status(upload.job_id)
                ended = status is None or status == JobRecord.Status.FINISHED or status in ENDED_BADLY
                if not ended or not self._watcher.ended_for_sure(upload.job_id):
                    continue
                if status == JobRecord.Status.FINISHED:
                    await self._tell(slot, upload, TransferStatus.UPLOADED, None, "the job finished")
                else:
                    why = f"the job ended {status or 'without a row'}"
                    failed = TransferStatus.UPLOAD_FAILED
                    await self._tell(slot, upload, failed, TransferFailure.TRANSFER_FAILED, why)

    async def _tell(self, slot: Slot, upload: Upload, status: TransferStatus, failure: TransferFailure | None,
                    detail: str) -> None:
        """Queue the notification first, then record it: a crash in between repeats it rather
        than losing it."""
        done = status is not TransferStatus.UPLOADING
        if slot is Slot.DIAGNOSTICS:
            wire = str(status)
            await self._notices.queue_persisted(Action.diagnostics_status_notification, {"status": wire})
        else:
            wire = str(_log_status(status, failure))
            await self._notices.queue_persisted(Action.log_status_notification,
                                                {"status": wire, "requestId": upload.request_id})
        told = replace(upload, status=wire, done=done)
        await write_state(slot, asdict(told))
        self._uploads[slot] = told
        log.info("%s job #%s: %s%s", slot, upload.job_id, wire, f" ({detail})" if detail else "")


def _log_status(status: TransferStatus, failure: TransferFailure | None) -> UploadLogStatus:
    if status is TransferStatus.UPLOAD_FAILED:
        return LOG_FAILURES.get(failure, UploadLogStatus.upload_failure) if failure else \
            UploadLogStatus.upload_failure
    return UploadLogStatus(str(status))
