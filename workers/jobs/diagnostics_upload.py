"""The DIAGNOSTICS_UPLOAD job: build a file for a time range and upload it where the CSMS asked
(OCPP GetDiagnostics, Security Whitepaper GetLog).

ocpp16 decides the file's name before the job runs (the CSMS hears it in the answer) and
starts the job once that answer has left. The job builds the diagnostics archive
(archive.py: logs, sessions, station info) or the security log (security_log.py), then uploads
it (upload.py) with the requested attempts and interval, and reports each step on the bus
(progress.py): Uploading, then Uploaded or UploadFailed with the reason. A cancelled job (a new
GetLog replaces the running one: its row is ended by `runner.cancel`) stops between attempts.

The job is resumable (base.RESUMABLE_KINDS): after a power cut the jobs service runs it again.
The file is written under a temporary name and renamed when complete, so a complete file under
its name is reused, not built again (its range would now give other content); an FTP(S)
upload continues from the size the server already holds (the name is unique to the request,
so those bytes are ours), an HTTP(S) one starts over. The run reports Uploading again, which
ocpp16 does not repeat to the CSMS.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from django.conf import settings
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from bus.messages import TransferFailure, TransferStatus
from webapp.env import StationEnv
from webapp.station.models import JobRecord
from workers.jobs import progress
from workers.jobs.archive import ArchiveRequest, describe, write_archive
from workers.jobs.base import JobFailed, JobLog
from workers.jobs.security_log import write_security_log
from workers.jobs.upload import UploadError, upload_with_retries

MAX_ATTEMPTS = 10
MAX_RETRY_INTERVAL_S = 3600
FILE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"
BUILD_BUDGET_S = 300  # the job's time limit: building the file ...
ATTEMPT_BUDGET_S = 900  # ... plus this per attempt (and the waits between attempts)


class UploadContent(StrEnum):
    DIAGNOSTICS = "diagnostics"  # the diagnostics archive (GetDiagnostics, GetLog DiagnosticsLog)
    SECURITY_LOG = "security_log"  # the security log (GetLog SecurityLog)


class UploadRequest(BaseModel):
    """The job's parameters; `location` may carry a password (kept in the row like any param,
    never logged)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    content: UploadContent
    start: AwareDatetime
    end: AwareDatetime
    all_logs: bool = Field(default=False, description="every log file, not only those written since start")
    file_name: str = Field(pattern=FILE_NAME_PATTERN)
    location: str = Field(min_length=1, max_length=512)
    attempts: int = Field(ge=1, le=MAX_ATTEMPTS)
    retry_interval_s: int = Field(ge=0, le=MAX_RETRY_INTERVAL_S)

    @model_validator(mode="after")
    def _start_before_end(self) -> UploadRequest:
        if self.start >= self.end:
            raise ValueError(f"start ({self.start.isoformat()}) must be before end ({self.end.isoformat()})")
        return self

    def to_params(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def time_limit_s(self) -> int:
        return BUILD_BUDGET_S + self.attempts * (ATTEMPT_BUDGET_S + self.retry_interval_s)


def file_name_for(content: UploadContent, start: datetime, end: datetime) -> str:
    """A unique name saying what and which range, e.g.
    `diagnostics-20260301T100000Z-20260301T120000Z-1a2b3c4d.zip`."""
    fmt = "%Y%m%dT%H%M%SZ"
    diagnostics = content is UploadContent.DIAGNOSTICS
    prefix, suffix = ("diagnostics", "zip") if diagnostics else ("securitylog", "csv")
    first, last = (moment.astimezone(UTC) for moment in (start, end))
    return f"{prefix}-{first:{fmt}}-{last:{fmt}}-{uuid.uuid4().hex[:8]}.{suffix}"


def upload_diagnostics(job: JobLog, params: dict[str, Any]) -> str:
    """The job's handler; returns the uploaded file's path relative to STATION_DATA_DIR."""
    try:
        request = UploadRequest.model_validate(params)
    except ValidationError as error:
        progress.report(job.record_id, TransferStatus.UPLOAD_FAILED, TransferFailure.BAD_REQUEST,
                        "invalid upload request")
        raise JobFailed(f"invalid upload request: {describe(error)}") from error
    env: StationEnv = settings.STATION_ENV
    path = _build(job, request, env.archives_dir / request.file_name)
    progress.report(job.record_id, TransferStatus.UPLOADING)
    try:
        where = upload_with_retries(
            path, request.location, attempts=request.attempts, retry_interval_s=request.retry_interval_s,
            cancelled=lambda: _cancelled(job.record_id), resume=True,
            on_failure=lambda attempt, error: job.warning("attempt %d of %d failed: %s", attempt,
                                                          request.attempts, error))
    except UploadError as error:
        progress.report(job.record_id, TransferStatus.UPLOAD_FAILED, error.failure, str(error))
        raise JobFailed(f"upload failed: {error}") from error
    job.info("uploaded to %s", where)
    progress.report(job.record_id, TransferStatus.UPLOADED, detail=where)
    return str(path.relative_to(env.data_dir))


def _build(job: JobLog, request: UploadRequest, target: Path) -> Path:
    """The file to upload; a failure to build it is reported as UploadFailed, then raised.
    A complete file from an interrupted run of this job is reused."""
    if target.is_file():
        job.info("%s was built by an earlier run of this job: reused", target.name)
        return target
    try:
        if request.content is UploadContent.DIAGNOSTICS:
            return write_archive(job, ArchiveRequest(start=request.start, end=request.end,
                                                     all_logs=request.all_logs), target.name)
        write_security_log(job, request.start, request.end, target)
        return target
    except Exception as error:
        progress.report(job.record_id, TransferStatus.UPLOAD_FAILED, TransferFailure.TRANSFER_FAILED,
                        f"the file could not be built: {error}")
        raise


def _cancelled(record_id: int) -> bool:
    """True once the row is no longer running (runner.cancel ended it)."""
    status = JobRecord.objects.filter(pk=record_id).values_list("status", flat=True).first()
    return status != JobRecord.Status.RUNNING
