"""diag's report, built from keys set on the real test Redis: fresh, stale, missing, invalid."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from bus import Bus, contract
from bus.enums import CheckState, ChildStatus, ConnectorStatus
from bus.messages import (
    ChildState,
    DeviceState,
    DiagCheck,
    DiagReport,
    Heartbeat,
    MeterReading,
    StationState,
    SupervisorState,
    utcnow,
)
from workers.diag.checks import ChangeLog, build_report, judge_device, read, supervised_services
from workers.diag.config import DeviceExpectation, MeterExpectation

METERS = (MeterExpectation("connector1", poll_s=1.0), MeterExpectation("connector2", poll_s=0.5))


def states(report: DiagReport) -> dict[str, CheckState]:
    return {check.name: check.state for check in report.checks}


async def report_now(bus: Bus, services: tuple[str, ...] = ()) -> DiagReport:
    supervisor = await read(bus, contract.SUPERVISOR)
    return await build_report(bus, METERS, services, supervisor, utcnow())


def station_state(*, io_online: bool) -> StationState:
    status = ConnectorStatus.AVAILABLE if io_online else ConnectorStatus.FAULTED
    return StationState(status=status, estop=False, io_online=io_online)


async def set_meter(bus: Bus, name: str, age_s: float) -> None:
    reading = MeterReading(meter=name, energy_wh=1000, power_w=0, at=utcnow() - timedelta(seconds=age_s))
    await bus.set(contract.METER, reading, meter=name)


async def test_meters_are_ok_within_three_poll_periods_stale_after_and_missing_without_a_key(bus) -> None:
    await set_meter(bus, "connector1", age_s=2.5)  # poll 1 s: fresh up to 3 s
    await set_meter(bus, "connector2", age_s=2.0)  # poll 0.5 s: stale after 1.5 s
    report = await report_now(bus)
    assert states(report)["meter:connector1"] is CheckState.OK
    assert states(report)["meter:connector2"] is CheckState.STALE
    stale = next(check for check in report.checks if check.name == "meter:connector2")
    assert stale.age_s == pytest.approx(2.0, abs=0.5)

    await bus.delete(contract.METER, meter="connector1")
    assert states(await report_now(bus))["meter:connector1"] is CheckState.MISSING


async def test_a_value_that_breaks_the_contract_is_reported_invalid(bus, redis_client) -> None:
    redis_client.set(bus.names.key(contract.METER.format(meter="connector1")), '{"meter": "connector1"}')
    redis_client.set(bus.names.key(contract.STATION.format()), "not json")
    report = await report_now(bus)
    assert states(report)["meter:connector1"] is CheckState.INVALID
    assert states(report)["io_module:io_module"] is CheckState.INVALID


@pytest.mark.parametrize(("online", "expected"), [(True, CheckState.OK), (False, CheckState.OFFLINE)])
async def test_the_io_module_is_judged_by_what_smartw_publishes(bus, online, expected) -> None:
    assert states(await report_now(bus))["io_module:io_module"] is CheckState.MISSING
    await bus.set(contract.STATION, station_state(io_online=online))
    assert states(await report_now(bus))["io_module:io_module"] is expected


async def test_services_are_the_supervised_ones_and_alive_while_their_heartbeat_exists(bus) -> None:
    children = [ChildState(name=name, module=f"workers.{name}", status=ChildStatus.RUNNING)
                for name in ("smartw", "diag", "jobs")]
    await bus.set(contract.SUPERVISOR, SupervisorState(pid=1, children=children))
    await bus.set(contract.HEARTBEAT, Heartbeat(service="smartw", pid=2), ttl_s=2, service="smartw")
    supervisor = await read(bus, contract.SUPERVISOR)
    services = supervised_services(supervisor, last_known=())
    assert services == ("smartw", "jobs")  # diag does not judge itself

    report = await build_report(bus, METERS, services, supervisor, utcnow())
    assert states(report)["service:chargepoint"] is CheckState.OK
    assert states(report)["service:smartw"] is CheckState.OK
    assert states(report)["service:jobs"] is CheckState.MISSING


async def test_the_last_known_services_are_kept_while_chargepoint_is_silent(bus) -> None:
    assert supervised_services(None, last_known=("smartw",)) == ("smartw",)
    report = await report_now(bus, services=("smartw",))
    assert states(report)["service:chargepoint"] is CheckState.MISSING
    assert states(report)["service:smartw"] is CheckState.MISSING


async def test_the_report_is_ok_only_when_every_check_is(bus) -> None:
    for meter in METERS:
        await set_meter(bus, meter.name, age_s=0)
    await bus.set(contract.STATION, station_state(io_online=True))
    await bus.set(contract.SUPERVISOR, SupervisorState(pid=1, children=[]))
    assert (await report_now(bus)).ok

    await bus.set(contract.STATION, station_state(io_online=False))
    report = await report_now(bus)
    assert not report.ok
    await bus.set(contract.DIAG, report)
    assert await bus.get(contract.DIAG) == report


# ---- change logging ----------------------------------------------------------------------


def report_of(**by_subject: CheckState) -> DiagReport:
    checks = tuple(DiagCheck(kind="meter", subject=subject, state=state)
                   for subject, state in by_subject.items())
    return DiagReport(ok=all(state is CheckState.OK for state in by_subject.values()), checks=checks)


def test_a_failure_is_logged_once_at_error_and_its_recovery_once_at_info(caplog) -> None:
    changes = ChangeLog()
    caplog.set_level(logging.INFO, logger="workers.diag.checks")
    for report in (report_of(connector1=CheckState.OK),
                   report_of(connector1=CheckState.STALE), report_of(connector1=CheckState.STALE),
                   report_of(connector1=CheckState.MISSING),
                   report_of(connector1=CheckState.OK), report_of(connector1=CheckState.OK)):
        changes.update(report, now=1.0)
    assert [(record.levelno, record.getMessage()) for record in caplog.records] == [
        (logging.ERROR, "diag: meter:connector1 is stale"),
        (logging.ERROR, "diag: meter:connector1 is missing"),
        (logging.INFO, "diag: meter:connector1 recovered (was missing)"),
    ]


def test_a_check_failing_when_first_seen_is_logged(caplog) -> None:
    changes = ChangeLog()
    changes.update(report_of(connector1=CheckState.OK, connector2=CheckState.OFFLINE), now=1.0)
    assert [record.getMessage() for record in caplog.records] == ["diag: meter:connector2 is offline"]


def test_nothing_is_logged_during_the_start_up_grace_then_what_still_fails_is(caplog) -> None:
    changes = ChangeLog(quiet_until=100.0)
    changes.update(report_of(connector1=CheckState.MISSING, connector2=CheckState.MISSING), now=99.0)
    assert caplog.records == []
    changes.update(report_of(connector1=CheckState.OK, connector2=CheckState.MISSING), now=100.0)
    assert [record.getMessage() for record in caplog.records] == ["diag: meter:connector2 is missing"]


@pytest.mark.parametrize(("state", "judged", "detail"), [
    (DeviceState(device="imd", available=True), CheckState.OK, ""),
    (DeviceState(device="imd", available=True, fault="insulation", reason="R below 100 kOhm"),
     CheckState.FAULTED, "insulation: R below 100 kOhm"),
    (DeviceState(device="imd", available=True, fault="E12"), CheckState.FAULTED, "E12"),
    (DeviceState(device="imd", available=False, reason="no answer (timeout)"), CheckState.OFFLINE,
     "no answer (timeout)"),
])
def test_a_device_that_reports_its_own_fault_fails_the_self_test_with_the_fault(
        state: DeviceState, judged: CheckState, detail: str) -> None:
    check = judge_device(DeviceExpectation(name="imd", owner="smartw"), state, owner_alive=True, now=utcnow())
    assert (check.state, check.detail) == (judged, detail)
