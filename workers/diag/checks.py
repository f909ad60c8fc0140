"""The self-test report: each device and service judged by what its owner publishes.

diag never opens a device's bus itself: an RS485 port can be opened by one process only,
and counters and smartw own them. So a meter answers when counters keeps its reading fresh
(written within 3 poll periods), the IO module answers when smartw says so (io_online), every
device station.toml wires answers while its owner's contract.DEVICE key says available (and
the owner is alive: that key has no TTL, so a dead owner's last word is stale, not fresh), and
a service is alive while its heartbeat key exists (it expires with the TTL the service sets)
and chargepoint does not report it down. Services are the ones chargepoint reports it runs
(contract.SUPERVISOR), and chargepoint itself is judged by that key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from bus import Bus, contract
from bus.contract import KeySpec
from bus.enums import CheckState, ChildStatus
from bus.messages import (
    ChildState,
    DeviceState,
    DiagCheck,
    DiagReport,
    Heartbeat,
    MeterReading,
    StationState,
    SupervisorState,
)
from workers.diag.config import DeviceExpectation, MeterExpectation

log = logging.getLogger(__name__)

T = TypeVar("T")
SELF = "diag"
SUPERVISOR_NAME = "chargepoint"
DOWN = frozenset({ChildStatus.BACKOFF, ChildStatus.STOPPED})  # chargepoint says the process is gone


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


def judge_device(device: DeviceExpectation, state: DeviceState | Unreadable | None, owner_alive: bool,
                 now: datetime) -> DiagCheck:
    """Available per its owner, and not reporting a fault of its own (a fault code in its key:
    an IMD alarm, a meter's anomaly, a power module's flag); stale while the owner is dead
    (nobody keeps the key current). `age_s` is the time since the owner last reported a change."""
    kind: Literal["device"] = "device"
    if state is None or isinstance(state, Unreadable):
        return DiagCheck(kind=kind, subject=device.name,
                         state=CheckState.MISSING if state is None else CheckState.INVALID)
    age = _age_s(state.at, now)
    if not owner_alive:
        return DiagCheck(kind=kind, subject=device.name, state=CheckState.STALE, age_s=age)
    if not state.available:
        return DiagCheck(kind=kind, subject=device.name, state=CheckState.OFFLINE, age_s=age,
                         detail=state.reason[:200])
    if state.fault:
        detail = f"{state.fault}: {state.reason}" if state.reason else state.fault
        return DiagCheck(kind=kind, subject=device.name, state=CheckState.FAULTED, age_s=age,
                         detail=detail[:200])
    return DiagCheck(kind=kind, subject=device.name, state=CheckState.OK, age_s=age)


def judge_service(name: str, child: ChildState | None, beat: Heartbeat | Unreadable | None,
                  now: datetime) -> DiagCheck:
    """Offline when chargepoint reports the process gone (sooner than its heartbeat expires),
    stale when the heartbeat is an older process's, else judged by the heartbeat's presence."""
    if child is not None and child.status in DOWN:
        return DiagCheck(kind="service", subject=name, state=CheckState.OFFLINE)
    check = judge_presence(name, beat, now)
    if isinstance(beat, Heartbeat) and child is not None and child.pid not in (None, beat.pid):
        return check.model_copy(update={"state": CheckState.STALE})
    return check


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
                       supervisor: SupervisorState | Unreadable | None, now: datetime, *,
                       devices: Sequence[DeviceExpectation] = ()) -> DiagReport:
    """Read every key once and judge it; `supervisor` was read by the caller (it also gives
    the services)."""
    checks = [judge_meter(meter, await read(bus, contract.METER, meter=meter.name), now)
              for meter in meters]
    checks.append(judge_io(await read(bus, contract.STATION), now))
    beats = {name: await read(bus, contract.HEARTBEAT, service=name)
             for name in dict.fromkeys([*services, *(device.owner for device in devices)])}
    for device in devices:
        owner_alive = isinstance(beats[device.owner], Heartbeat)
        checks.append(judge_device(device, await read(bus, contract.DEVICE, device=device.name),
                                   owner_alive, now))
    checks.append(judge_presence(SUPERVISOR_NAME, supervisor, now))
    children = ({child.name: child for child in supervisor.children}
                if isinstance(supervisor, SupervisorState) else {})
    for name in services:
        checks.append(judge_service(name, children.get(name), beats[name], now))
    return _report(checks, now)


def _report(checks: Sequence[DiagCheck], at: datetime) -> DiagReport:
    """A report passes when it has checks and every one is ok (none judged is no pass)."""
    passed = bool(checks) and all(check.state is CheckState.OK for check in checks)
    return DiagReport(ok=passed, checks=tuple(checks), at=at)


def about(report: DiagReport, subject: str | None) -> DiagReport:
    """The report's checks of one subject (every check for None). An unknown subject gives a
    report with no checks, which never passes: the self-test command's answer to it."""
    if subject is None:
        return report
    return _report([check for check in report.checks if check.subject == subject], report.at)


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
