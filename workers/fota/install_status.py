"""What ops/start.sh says about the last install of a kind (packages/status/<kind>.json:
{kind, stage, result: running|ok|failed, time, message, packages}).

After the update restart the FOTA job reads it to report Installed or InstallationFailed. A
file written before the job asked for the install is from an earlier update and says nothing
about this one; a file still `running` means start.sh died mid-install (power cut): dpkg did
not finish, so that is a failed install too, and the previous version is what runs. An `ok`
install is still pending while start.sh keeps the new version on probation (`<kind>.probation`:
it rolls back a version that keeps crashing right after its start), so Installed is never
reported for a version start.sh then takes back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

CLOCK_SLACK = timedelta(seconds=2)  # start.sh's time has whole seconds
PROBATION_SUFFIX = ".probation"  # <kind>.probation: start.sh's probation of a new version is running


class InstallResult(StrEnum):
    PENDING = "pending"  # no status for this install yet
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class InstallStatus:
    result: InstallResult
    message: str = ""


def read_install_status(path: Path, *, since: datetime) -> InstallStatus:
    """The outcome of the install asked for at `since`; PENDING while start.sh has not written
    one for it."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        written = datetime.fromisoformat(record["time"])
        result, message = str(record["result"]), str(record.get("message", ""))
    except FileNotFoundError:
        return InstallStatus(InstallResult.PENDING)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return InstallStatus(InstallResult.FAILED, f"{path.name} cannot be read: {error}")
    if written.tzinfo is None or written + CLOCK_SLACK < since:
        return InstallStatus(InstallResult.PENDING)
    if result == "ok":
        if path.with_suffix(PROBATION_SUFFIX).exists():  # start.sh still watches the new version run
            return InstallStatus(InstallResult.PENDING)
        return InstallStatus(InstallResult.OK, message)
    if result == "running":
        return InstallStatus(InstallResult.FAILED, f"the install did not finish ({message})")
    return InstallStatus(InstallResult.FAILED, message or f"result {result!r}")
