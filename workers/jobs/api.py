"""What the configurator, the CLI and other code call to start jobs.

The caller's process only writes the JobRecord row and puts the RQ job on the queue; the jobs
service runs it. Parameters are checked by the job itself (a bad range ends the row `failed`
with the reason), so every caller gets the same rule and the same message.
"""

from __future__ import annotations

from datetime import datetime

from webapp.station.models import JobRecord
from workers.jobs.base import JobKind
from workers.jobs.runner import run_sync, submit


def archive_params(start: datetime, end: datetime, *, all_logs: bool = False) -> dict[str, object]:
    return {"start": start.isoformat(), "end": end.isoformat(), "all_logs": all_logs}


def request_archive(start: datetime, end: datetime, *, all_logs: bool = False,
                    at: datetime | None = None) -> JobRecord:
    """Queue a diagnostics archive of [start, end] (optionally to run at `at`)."""
    return submit(JobKind.DIAGNOSTICS_ARCHIVE, archive_params(start, end, all_logs=all_logs), at=at)


def build_archive_now(start: datetime, end: datetime, *, all_logs: bool = False) -> JobRecord:
    """Build a diagnostics archive in this process (CLI, tests); returns the finished row."""
    return run_sync(JobKind.DIAGNOSTICS_ARCHIVE, archive_params(start, end, all_logs=all_logs))
