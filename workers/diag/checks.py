"""The self-test report: each device and service judged by what its owner publishes.

diag never opens a device's bus itself: an RS485 port can be opened by one process only,
and counters and smartw own them. So a meter answers when counters keeps its reading fresh
(written within 3 poll periods), the IO module answers when smartw says so (io_online), and
a service is alive while its heartbeat key exists (it expires with the TTL the service sets).
Services are the ones chargepoint reports it runs (contract.SUPERVISOR), and chargepoint
itself is judged by that key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from bus import Bus, contract
from bus.contract import KeySpec
from bus.enums import CheckState
from bus.messages import DiagCheck, DiagReport, Heartbeat, MeterReading, StationState, SupervisorState
from workers.diag.config import MeterExpectation

log = logging.getLogger(__name__)

T = TypeVar("T")
SELF = "diag"
SUPERVISOR_NAME = "chargepoint"


class Unreadable:
    """A key whose value does not validate against the contract (judged `invalid`)."""


UNREADABLE = Unreadable()


async def read(bus: Bus, spec: KeySpec[T], **params: Any) -> T | Unreadable | None:
    """The key's value, None when absent, UNREADABLE (logged) when it breaks the contract."""
    try:
        return await bus.get(spec, **params)
    except ValidationError as error:
        log.debug("%s holds an invalid value: %s", spec.format(**params), error)
        return UNREADABLE


def _age_s(at: datetime, now: datetime) -> float:
    return round((now - at).total_seconds(), 3)


def judge_meter(meter: MeterExpectation, reading: MeterReading | Unreadable | None,
                now: datetime) -> DiagCheck:
    if reading is None or isinstance(reading, Unreadable):
        state = CheckState.MISSING if reading is None else CheckState.INVALID
        return DiagCheck(kind="meter", subject=meter.name, state=state)
    age = _age_s(reading.at, now)
    state = CheckState.OK if age <= meter.max_age_s else CheckState.STALE
    return DiagCheck(kind="meter", subject=meter.name, state=state, age_s=age)


def judge_io(station: StationState | Unreadable | None, now: datetime) -> DiagCheck:
    if station is None or isinstance(station, Unreadable):
        state = CheckState.MISSING if station is None else CheckState.INVALID
        return DiagCheck(kind="io_module", subject="io_module", state=state)
    state = CheckState.OK if station.io_online else CheckState.OFFLINE
    return DiagCheck(kind="io_module", subject="io_module", state=state, age_s=_age_s(station.at, now))


def judge_presence(subject: str, value: Heartbeat | SupervisorState | Unreadable | None,
                   now: datetime) -> DiagCheck:
    """A service is alive while its key exists: the key expires when it stops refreshing it."""
    kind: Literal["service"] = "service"
    if value is None:
        return DiagCheck(kind=kind, subject=subject, state=CheckState.MISSING)
    if isinstance(value, Unreadable):
        return DiagCheck(kind=kind, subject=subject, state=CheckState.INVALID)
    return DiagCheck(kind=kind, subject=subject, state=CheckState.OK, age_s=_age_s(value.at, now))


async def build_report(bus: Bus, meters: Sequence[MeterExpectation], services: Sequence[str],
                       supervisor: SupervisorState | Unreadable | None, now: datetime) -> DiagReport:
    """Read every key once and judge it; `supervisor` was read by the caller (it also gives
    the services)."""
    checks = [judge_meter(meter, await read(bus, contract.METER, meter=meter.name), now)
              for meter in meters]
    checks.append(judge_io(await read(bus, contract.STATION), now))
    checks.append(judge_presence(SUPERVISOR_NAME, supervisor, now))
    for name in services:
        checks.append(judge_presence(name, await read(bus, contract.HEARTBEAT, service=name), now))
    return DiagReport(ok=all(check.state is CheckState.OK for check in checks), checks=tuple(checks), at=now)


def supervised_services(supervisor: SupervisorState | Unreadable | None,
                        last_known: tuple[str, ...]) -> tuple[str, ...]:
    """The services chargepoint runs (except diag); the last known list while it is silent."""
    if supervisor is None or isinstance(supervisor, Unreadable):
        return last_known
    return tuple(child.name for child in supervisor.children if child.name != SELF)


class ChangeLog:
    """Logs each change of a check's result once: ERROR when it fails (or fails differently),
    INFO when it recovers. A check that is ok the first time it is seen is not logged.

    Nothing is logged before `quiet_until` (a monotonic time): at a station's start every
    service is still coming up, and that is not a fault."""

    def __init__(self, quiet_until: float = 0.0) -> None:
        self.quiet_until = quiet_until
        self._last: dict[str, CheckState] = {}

    def update(self, report: DiagReport, now: float) -> None:
        """Compare `report` with the last one; `now` is a monotonic time."""
        if now < self.quiet_until:
            return
        for check in report.checks:
            before = self._last.get(check.name)
            if before is check.state:
                continue
            self._last[check.name] = check.state
            if check.state is not CheckState.OK:
                log.error("diag: %s is %s%s", check.name, check.state,
                          f" (last value {check.age_s:.1f} s old)" if check.age_s is not None else "")
            elif before is not None:
                log.info("diag: %s recovered (was %s)", check.name, before)
