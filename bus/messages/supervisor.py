"""chargepoint's and diag's payloads: child states, update exits, restarts, self-test reports."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from bus.enums import (
    CheckState,
    ChildStatus,
    UpdateKind,
)
from bus.messages.base import Message, utcnow


class ChildState(Message):
    """One service process supervised by chargepoint."""

    name: str = Field(description="service name (= its heartbeat key)")
    module: str = Field(description="python module run with `python -m`")
    status: ChildStatus
    pid: int | None = Field(default=None, description="OS pid of the running process; None while down")
    restarts: int = Field(default=0, ge=0, description="times chargepoint started it again")
    last_exit_code: int | None = Field(default=None, description="exit code of the previous process "
                                       "(negative = killed by that signal)")
    started_at: datetime | None = Field(default=None, description="when the current process started")


class SupervisorState(Message):
    """chargepoint's view of every service: pids and restart counts (status, tests, diag)."""

    pid: int = Field(description="chargepoint's own pid")
    children: list[ChildState]
    at: datetime = Field(default_factory=utcnow)


class ExitForUpdateRequest(Message):
    """Ask chargepoint to stop every service and exit with the update's exit code, so
    ops/start.sh installs the packages staged for `kind` (the FOTA job sends it)."""

    kind: UpdateKind


class RestartRequest(Message):
    """Ask chargepoint to stop every station service and start them again (OCPP Reset). The
    simulator, which plays the hardware, keeps running."""

    kind: Literal["soft", "hard"] = Field(description="soft: restart the services; hard: also run "
                                          "the configured reboot command (STATION_REBOOT_COMMAND) if any")
    reason: str = Field(default="", max_length=100, description="for the log, e.g. 'OCPP Reset Soft'")


class DiagCheck(Message):
    """One self-test result: a device judged by what its owner publishes, or a service."""

    kind: Literal["meter", "io_module", "service", "device"]
    subject: str = Field(description="meter name ('connector1'), 'io_module', or service name")
    state: CheckState
    age_s: float | None = Field(default=None, description="age of the value judged, s; None if missing")
    detail: str = Field(default="", max_length=200, description="why it is not ok, for people: the "
                        "device's fault code and its owner's reason")

    @property
    def name(self) -> str:
        """Stable id of the check, e.g. 'meter:connector1' (log lines, change tracking)."""
        return f"{self.kind}:{self.subject}"


class DiagReport(Message):
    """diag's latest self-test of every configured device and supervised service."""

    ok: bool = Field(description="every check is ok")
    checks: tuple[DiagCheck, ...]
    at: datetime = Field(default_factory=utcnow)
