"""diag's self-test on request (contract.SELF_TEST) and the checks it added: every configured
device (contract.DEVICE, judged with its owner's heartbeat) and the supervisor's view of each
service. States are written to the real test Redis; the command goes to a real diag process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bus import Bus, BusRequestError, contract
from bus.enums import CheckState, ChildStatus, ConnectorStatus, ReplyError
from bus.messages import (
    ChildState,
    DeviceState,
    DiagCheck,
    DiagReport,
    Heartbeat,
    MeterReading,
    SelfTestRequest,
    StationState,
    SupervisorState,
    utcnow,
)
from tests.support.waiting import async_wait_until
from webapp.env import REPO_ROOT
from workers.common.station_config import load_station_config
from workers.diag.checks import about, build_report, read
from workers.diag.config import DeviceExpectation, MeterExpectation, expected_devices, expected_meters

SIM_TOML = REPO_ROOT / "ops" / "station.sim.toml"
STOP_TIMEOUT_S = 15.0
CONTROLLER = DeviceExpectation("controller:1", owner="smartw")
READER = DeviceExpectation("rfid", owner="rfid")


def states(report: DiagReport) -> dict[str, CheckState]:
    return {check.name: check.state for check in report.checks}


async def beat(bus: Bus, service: str, pid: int = 4242) -> None:
    await bus.set(contract.HEARTBEAT, Heartbeat(service=service, pid=pid), ttl_s=5, service=service)


async def set_device(bus: Bus, name: str, *, available: bool) -> None:
    reason = "" if available else "no answer within 0.5 s"
    await bus.set(contract.DEVICE, DeviceState(device=name, available=available, reason=reason), device=name)


async def devices_report(bus: Bus, *devices: DeviceExpectation) -> DiagReport:
    return await build_report(bus, (), (), await read(bus, contract.SUPERVISOR), utcnow(), devices=devices)


# ---- what is expected of a station.toml ------------------------------------------------------


def test_every_device_the_sim_station_wires_is_expected_with_the_service_that_polls_it(
        tmp_path: Path) -> None:
    station = load_station_config(SIM_TOML, data_dir=tmp_path)
    by_owner: dict[str, list[str]] = {}
    for device in expected_devices(station):
        by_owner.setdefault(device.owner, []).append(device.name)
    assert by_owner == {
        "counters": ["meter:connector1", "meter:connector2", "meter:connector3", "meter:connector4",
                     "meter:station"],
        "smartw": ["controller:1", "controller:2", "controller:3", "controller:4", "io", "imd",
                   "pm1", "pm2", "pm3", "pm4", "pm5", "pm6"],
        "rfid": ["rfid"],
    }
    assert expected_meters(station)[-1] == MeterExpectation("station", poll_s=2.0)  # the grid meter


def test_optional_devices_are_expected_only_when_station_toml_has_them(tmp_path: Path) -> None:
    full = load_station_config(SIM_TOML, data_dir=tmp_path)
    bare = full.model_copy(update={"imd": None, "power_modules": None,
                                   "station": full.station.model_copy(update={"meter": None})})
    names = [device.name for device in expected_devices(bare)]
    assert "imd" not in names and "meter:station" not in names
    assert not any(name.startswith("pm") for name in names)
    assert [meter.name for meter in expected_meters(bare)] == [f"connector{c.id}" for c in full.connectors]


# ---- judging devices and services ------------------------------------------------------------


@pytest.mark.parametrize(("available", "owner_beats", "expected"), [
    (True, True, CheckState.OK),
    (False, True, CheckState.OFFLINE),
    (True, False, CheckState.STALE),  # the key outlives a dead owner: its last word is not fresh
    (False, False, CheckState.STALE),
])
async def test_a_device_is_judged_by_its_owners_word_while_the_owner_is_alive(
        bus: Bus, available: bool, owner_beats: bool, expected: CheckState) -> None:
    await set_device(bus, CONTROLLER.name, available=available)
    if owner_beats:
        await beat(bus, CONTROLLER.owner)
    report = await devices_report(bus, CONTROLLER)
    check = next(check for check in report.checks if check.kind == "device")
    assert (check.subject, check.state) == ("controller:1", expected)
    assert check.age_s is not None and 0 <= check.age_s < 5


async def test_a_device_never_reported_is_missing_and_a_broken_value_invalid(bus: Bus, redis_client) -> None:
    await beat(bus, "smartw")
    await beat(bus, "rfid")
    redis_client.set(bus.names.key(contract.DEVICE.format(device="rfid")), '{"device": "rfid"}')
    assert states(await devices_report(bus, CONTROLLER, READER)) == {
        "device:controller:1": CheckState.MISSING, "device:rfid": CheckState.INVALID,
        "io_module:io_module": CheckState.MISSING, "service:chargepoint": CheckState.MISSING}


async def test_each_device_needs_its_own_owner_alive(bus: Bus) -> None:
    await set_device(bus, CONTROLLER.name, available=True)
    await set_device(bus, READER.name, available=True)
    await beat(bus, "rfid")  # smartw is dead
    judged = states(await devices_report(bus, CONTROLLER, READER))
    assert judged["device:controller:1"] is CheckState.STALE
    assert judged["device:rfid"] is CheckState.OK


async def test_a_service_chargepoint_reports_down_is_offline_even_before_its_heartbeat_expires(
        bus: Bus) -> None:
    children = [ChildState(name="smartw", module="workers.smartw", status=ChildStatus.BACKOFF,
                           last_exit_code=1),
                ChildState(name="rfid", module="workers.rfid", status=ChildStatus.RUNNING, pid=77),
                ChildState(name="jobs", module="workers.jobs", status=ChildStatus.RUNNING, pid=78)]
    await bus.set(contract.SUPERVISOR, SupervisorState(pid=1, children=children))
    await beat(bus, "smartw", pid=76)  # the crashed process's beat lives on for its TTL
    await beat(bus, "rfid", pid=70)  # an older rfid process's beat: not the running one's
    await beat(bus, "jobs", pid=78)
    supervisor = await read(bus, contract.SUPERVISOR)
    report = await build_report(bus, (), ("smartw", "rfid", "jobs"), supervisor, utcnow())
    judged = states(report)
    assert judged["service:smartw"] is CheckState.OFFLINE
    assert judged["service:rfid"] is CheckState.STALE
    assert judged["service:jobs"] is CheckState.OK
    assert not report.ok


# ---- one subject ------------------------------------------------------------------------------


def test_a_subject_narrows_the_report_and_an_unknown_one_gives_no_checks_and_no_pass() -> None:
    report = DiagReport(ok=False, checks=(
        DiagCheck(kind="meter", subject="connector1", state=CheckState.OK, age_s=0.2),
        DiagCheck(kind="service", subject="smartw", state=CheckState.MISSING),
    ))
    assert about(report, None) is report
    assert about(report, "connector1") == DiagReport(ok=True, checks=report.checks[:1], at=report.at)
    assert about(report, "smartw").ok is False
    assert about(report, "connector9") == DiagReport(ok=False, checks=(), at=report.at)


# ---- the command, served by a real diag process ------------------------------------------------


@pytest.fixture
def diag_process(tmp_path: Path, redis_client) -> Iterator[subprocess.Popen[bytes]]:
    output = tmp_path / "diag.out"
    env = {**os.environ, "STATION_DATA_DIR": str(tmp_path / "data")}
    with output.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "workers.diag"], env=env, cwd=REPO_ROOT,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(STOP_TIMEOUT_S)
        print(output.read_text(errors="replace")[-4000:])  # shown by pytest when the test failed


async def _serving(bus: Bus) -> DiagReport:
    async def answer() -> DiagReport | None:
        try:
            return await bus.request(contract.SELF_TEST, SelfTestRequest(), timeout_s=0.5)
        except BusRequestError as error:
            assert error.code is ReplyError.TIMEOUT, error
            return None
    return await async_wait_until(answer, timeout_s=20, what="diag answering the self-test")


async def test_the_self_test_command_judges_fresh_values_by_subject_and_says_when_none_matches(
        diag_process: subprocess.Popen[bytes], bus: Bus) -> None:
    first = await _serving(bus)
    assert states(first)["meter:connector1"] is CheckState.MISSING
    assert "device:controller:1" in states(first) and "device:rfid" in states(first)
    assert not first.ok

    written_at = utcnow()  # everything below is newer than any report diag had cached
    reading = MeterReading(meter="connector1", energy_wh=5, power_w=0)
    await bus.set(contract.METER, reading, meter="connector1")
    station = StationState(status=ConnectorStatus.AVAILABLE, estop=False, io_online=True)
    await bus.set(contract.STATION, station)
    await beat(bus, "smartw")
    await set_device(bus, "controller:1", available=False)

    meter = await bus.request(contract.SELF_TEST, SelfTestRequest(subject="connector1"))
    assert meter.at >= written_at
    assert [(c.kind, c.subject, c.state) for c in meter.checks] == [("meter", "connector1", CheckState.OK)]
    assert meter.ok
    io = await bus.request(contract.SELF_TEST, SelfTestRequest(subject="io_module"))
    assert (io.ok, states(io)) == (True, {"io_module:io_module": CheckState.OK})
    controller = await bus.request(contract.SELF_TEST, SelfTestRequest(subject="controller:1"))
    assert (controller.ok, states(controller)) == (False, {"device:controller:1": CheckState.OFFLINE})

    everything = await bus.request(contract.SELF_TEST, SelfTestRequest(subject=None))
    assert everything.at >= written_at
    assert states(everything)["meter:connector1"] is CheckState.OK
    assert states(everything)["meter:connector2"] is CheckState.MISSING
    assert not everything.ok

    unknown = await bus.request(contract.SELF_TEST, SelfTestRequest(subject="warp_drive"))
    assert (unknown.ok, unknown.checks) == (False, ())

    diag_process.send_signal(signal.SIGTERM)
    assert diag_process.wait(STOP_TIMEOUT_S) == 0


async def test_a_stale_reading_is_stale_in_the_self_test_at_once(
        diag_process: subprocess.Popen[bytes], bus: Bus) -> None:
    await _serving(bus)
    old = MeterReading(meter="connector1", energy_wh=5, power_w=0, at=utcnow() - timedelta(seconds=10))
    await bus.set(contract.METER, old, meter="connector1")
    reply = await bus.request(contract.SELF_TEST, SelfTestRequest(subject="connector1"))
    assert (reply.ok, states(reply)) == (False, {"meter:connector1": CheckState.STALE})
