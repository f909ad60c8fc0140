"""The security log file GetLog(SecurityLog) uploads (Security Whitepaper ed.2 N01, A04): the
rows of table SecurityEvent (written by ocpp16's security feature) in a time range, oldest
first, as CSV with the columns `timestamp` (UTC, ISO 8601), `type`, `critical`, `techInfo`.

Written as `<name>.part` and renamed when complete, like the diagnostics archive.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from webapp.station.models import SecurityEvent
from workers.jobs.base import JobLog

COLUMNS = ("timestamp", "type", "critical", "techInfo")
PARTIAL_SUFFIX = ".part"


def write_security_log(job: JobLog, start: datetime, end: datetime, target: Path) -> int:
    """Write the events of [start, end] to `target`; returns how many."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    rows = (SecurityEvent.objects.filter(at__gte=start, at__lte=end).order_by("at", "pk")
            .values_list("at", "type", "critical", "tech_info"))
    count = 0
    try:
        with partial.open("w", encoding="utf-8", newline="") as text:
            writer = csv.writer(text)
            writer.writerow(COLUMNS)
            for at, event_type, critical, tech_info in rows.iterator():
                when = at.astimezone(UTC).isoformat()
                writer.writerow([when, event_type, str(critical).lower(), tech_info])
                count += 1
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)  # only left over when writing failed
    job.info("security log ready: %s with %d event(s) of %s .. %s", target.name, count,
             start.isoformat(), end.isoformat())
    return count
