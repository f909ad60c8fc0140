"""What the configurator, the CLI and other code call to start jobs.

The caller's process only writes the JobRecord row and puts the RQ job on the queue; the jobs
service runs it. Parameters are checked by the job itself (a bad range ends the row `failed`
with the reason), so every caller gets the same rule and the same message; the request
models below let a caller check them first (ocpp16 answers the CSMS from that check).
"""

from __future__ import annotations

from datetime import datetime

from webapp.station.models import JobRecord
from workers.jobs import runner
from workers.jobs.base import JobKind
from workers.jobs.diagnostics_upload import UploadContent, UploadRequest, file_name_for
from workers.jobs.firmware import FirmwareRequest
from workers.jobs.runner import run_sync, submit

__all__ = ["FirmwareRequest", "UploadContent", "UploadRequest", "file_name_for"]


def archive_params(start: datetime, end: datetime, *, all_logs: bool = False) -> dict[str, object]:
    return {"start": start.isoformat(), "end": end.isoformat(), "all_logs": all_logs}


def request_archive(start: datetime, end: datetime, *, all_logs: bool = False,
                    at: datetime | None = None) -> JobRecord:
    """Queue a diagnostics archive of [start, end] (optionally to run at `at`)."""
    return submit(JobKind.DIAGNOSTICS_ARCHIVE, archive_params(start, end, all_logs=all_logs), at=at)


def build_archive_now(start: datetime, end: datetime, *, all_logs: bool = False) -> JobRecord:
    """Build a diagnostics archive in this process (CLI, tests); returns the finished row."""
    return run_sync(JobKind.DIAGNOSTICS_ARCHIVE, archive_params(start, end, all_logs=all_logs))


def request_upload(request: UploadRequest) -> JobRecord:
    """Queue building and uploading a diagnostics archive or the security log."""
    return submit(JobKind.DIAGNOSTICS_UPLOAD, request.to_params(), timeout_s=request.time_limit_s())


def request_firmware_update(request: FirmwareRequest) -> JobRecord:
    """Queue the over-the-air update (workers/jobs/firmware.py, stages in workers/fota/update.py)."""
    return submit(JobKind.FIRMWARE_UPDATE, request.to_params(), timeout_s=request.time_limit_s())


def cancel(record_id: int, reason: str) -> bool:
    """Stop a queued or running job; False if it had ended already."""
    return runner.cancel(record_id, reason)


def job_status(record_id: int) -> str | None:
    """The row's status (JobRecord.Status value); None when there is no such row."""
    return JobRecord.objects.filter(pk=record_id).values_list("status", flat=True).first()
