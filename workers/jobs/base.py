"""What every job shares: its kind, its domain error, and the log it writes into its row.

A job is a plain function `handler(job_log, params) -> result_file` (STYLE habit 11, after
NetBox `netbox/jobs.py`): it raises `JobFailed` for an outcome the operator can act on (bad
parameters, nothing to do), and lets anything else propagate, which the runner records as a
crash with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from webapp.station.models import JobRecord

log = logging.getLogger(__name__)


class JobKind(StrEnum):
    """The jobs this station runs; the value is stored in JobRecord.kind."""

    DIAGNOSTICS_ARCHIVE = "diagnostics_archive"
    DIAGNOSTICS_UPLOAD = "diagnostics_upload"  # OCPP GetDiagnostics / GetLog: build, then upload
    FIRMWARE_UPDATE = "firmware_update"  # OCPP UpdateFirmware / SignedUpdateFirmware
    HMI_SCREENSHOT = "hmi_screenshot"  # the kiosk page as a PNG, for the configurator
    UPDATE_CONTROLLERS = "update_controllers"  # flash the controllers from an installed firmware bundle


RESUMABLE_KINDS: frozenset[str] = frozenset({
    JobKind.FIRMWARE_UPDATE, JobKind.DIAGNOSTICS_UPLOAD,
    JobKind.UPDATE_CONTROLLERS,  # flashing the controllers (done ones are skipped)
})
"""Kinds whose handler continues from what it already did when run again, so a row left
`running` by a killed jobs service (power cut) is queued again at the next start instead of
ending errored (runner.recover_interrupted)."""


class JobFailed(Exception):
    """An expected failure with a reason for the operator: the row ends `failed`, no traceback."""


class JobLog:
    """Appends timestamped lines to a JobRecord's `log` (the configurator shows progress from
    it) and mirrors them to the service log. Each line is one UPDATE ... log = log || line, so
    a reader never sees a half-written log and nothing else in the row is overwritten."""

    def __init__(self, record_id: int, kind: str) -> None:
        self.record_id = record_id
        self.kind = kind

    def info(self, message: str, *args: Any) -> None:
        self._write(logging.INFO, message, args)

    def warning(self, message: str, *args: Any) -> None:
        self._write(logging.WARNING, message, args)

    def error(self, message: str, *args: Any) -> None:
        self._write(logging.ERROR, message, args)

    def _write(self, level: int, message: str, args: tuple[Any, ...]) -> None:
        text = message % args if args else message
        log.log(level, "job %s #%s: %s", self.kind, self.record_id, text)
        JobRecord.objects.filter(pk=self.record_id).update(log=append_line(level, text))


def append_line(level: int, text: str) -> Concat:
    """An expression appending one timestamped line to `log` (for `QuerySet.update`)."""
    line = f"{timezone.now():%Y-%m-%d %H:%M:%S} {logging.getLevelName(level)} {text}\n"
    return Concat(F("log"), Value(line))


Handler = Callable[[JobLog, dict[str, Any]], str]
"""A job: gets its log and the row's params, returns the produced file's path relative to
STATION_DATA_DIR ("" when it produces none)."""
