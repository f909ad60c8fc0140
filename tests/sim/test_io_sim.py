"""The simulated IO module and insulation monitor, driven by the real drivers over a real Modbus
TCP server: door, contactor feedback with its delay, weld and stuck-open faults, the e-stop in
the coil circuit, the host watchdog, offline, and the IMD's insulation fault and self-test.
Both IO layouts (ICP DAS-style bits, Owen bitmask registers) run the same scenarios."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.server import ModbusTcpServer

from tests.sim.processes import REPO_ROOT, SimStation
from tests.support.waiting import async_wait_until, wait_until
from workers.common.redis_server import free_port
from workers.common.station_config import StationConfig
from workers.drivers.errors import DeviceError
from workers.drivers.imd import Imd, SelfTestResult
from workers.drivers.io_module import ContactorFault, IoModule, IoSnapshot
from workers.drivers.modbus_hub import ModbusHub
from workers.sim.devices import absent_devices
from workers.sim.faults import UnknownFault
from workers.sim.imd import FAULT_OHM, HEALTHY_OHM, SimImd
from workers.sim.io_module import NotWired, SimIoModule

FEEDBACK_DELAY_S = 0.15  # longer than real contactors, so "not yet" is observable
FEEDBACK_TIMEOUT_S = 0.3
IO, IO_INPUTS, IMD = 10, 11, 3
LAYOUTS = {
    "bits": {"layout": "bits", "inputs": {"estop": 0, "door": {"address": 1, "polarity": "nc"},
                                          "imd_alarm": 2, "fan_alarm": 3}},
    "owen": {"layout": "owen", "input_device_id": IO_INPUTS,
             "inputs": {"estop": {"address": 0, "polarity": "nc"}, "door": {"address": 1, "polarity": "nc"},
                        "imd_alarm": 2, "fan_alarm": 3}},
}


def station_config(port: int, layout: str, **io_fields: object) -> StationConfig:
    controller = {"bus": "tcp", "device_id": 21}
    connectors = [
        {"id": cid, "standard": "CCS", "max_power_kw": 50, "contactor_coil": cid - 1,
         "contactor_feedback": 7 + cid, "meter": {"bus": "tcp", "device_id": cid, "model": "acudc243"},
         "controller": {**controller, "device_id": 20 + cid}} for cid in (1, 2)]
    return StationConfig.model_validate({
        "station": {"max_power_kw": 100},
        "buses": {"tcp": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": port, "timeout_s": 0.5}},
        "io_module": {"bus": "tcp", "device_id": IO, "poll_s": 0.1, "fans": [4],
                      "feedback_timeout_s": FEEDBACK_TIMEOUT_S, **LAYOUTS[layout], **io_fields},
        "imd": {"bus": "tcp", "device_id": IMD},
        "rfid": {"port": "/dev/null", "baudrate": 9600},
        "connectors": connectors,
    })


@dataclass
class SimIo:
    io: SimIoModule
    imd: SimImd
    driver: IoModule
    imd_driver: Imd
    hub: ModbusHub

    async def poll(self) -> IoSnapshot:
        return await self.driver.poll()

    async def feedback(self, connector_id: int, closed: bool) -> IoSnapshot | None:
        snapshot = await self.driver.poll()
        return snapshot if snapshot.contactor_feedback[connector_id] is closed else None


async def start(layout: str = "bits", **io_fields: object) -> tuple[SimIo, ModbusTcpServer]:
    port = free_port()
    config = station_config(port, layout, **io_fields)
    assert config.imd is not None
    imd = SimImd(config.imd, self_test_s=0.2)
    io = SimIoModule(config, imd_alarm=lambda: imd.alarm_active, feedback_delay_s=FEEDBACK_DELAY_S)
    server = ModbusTcpServer([absent_devices(), *io.devices().values(), imd.device()],
                             address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    await io.attach(server)
    await imd.attach(server)
    hub = ModbusHub("tcp", config.buses["tcp"])
    drivers = IoModule.from_config(config, {"tcp": hub}), Imd.from_config(config.imd, {"tcp": hub})
    return SimIo(io, imd, *drivers, hub), server


@pytest.fixture(params=["bits", "owen"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[SimIo]:
    sim_io, server = await start(request.param)
    try:
        yield sim_io
    finally:
        sim_io.io.detach()
        await sim_io.hub.close()
        await server.shutdown()


@pytest.fixture
async def watched() -> AsyncIterator[SimIo]:
    sim_io, server = await start("bits", watchdog_s=0.3)
    try:
        yield sim_io
    finally:
        sim_io.io.detach()
        await sim_io.hub.close()
        await server.shutdown()


async def test_the_door_opens_and_closes_through_its_nc_switch(sim: SimIo) -> None:
    assert (await sim.poll()).door_open is False
    await sim.io.set_door(True)
    assert (await sim.poll()).door_open is True
    await sim.io.set_door(False)
    assert (await sim.poll()).door_open is False


async def test_a_door_that_is_not_wired_is_refused() -> None:
    config = station_config(free_port(), "bits", inputs={"estop": 0})
    with pytest.raises(NotWired, match="no door switch"):
        await SimIoModule(config).set_door(True)


async def test_the_feedback_follows_the_coil_after_the_contactor_delay(sim: SimIo) -> None:
    loop = asyncio.get_running_loop()
    await sim.driver.set_contactor(1, True)
    switched = loop.time()
    snapshot = await sim.poll()
    assert snapshot.contactors_closed[1] and not snapshot.contactor_feedback[1]
    await async_wait_until(lambda: sim.feedback(1, True), timeout_s=2, what="contact 1 closed")
    assert loop.time() - switched >= FEEDBACK_DELAY_S - 0.01
    assert sim.io.conducts(1) and not sim.io.conducts(2)
    await sim.driver.set_contactor(1, False)
    snapshot = await async_wait_until(lambda: sim.feedback(1, False), timeout_s=2, what="contact 1 open")
    assert dict(snapshot.contactor_faults) == {}


async def test_a_welded_contactor_stays_closed_and_the_driver_reports_it(sim: SimIo) -> None:
    sim.io.inject_fault("weld1")
    await sim.driver.set_contactor(1, True)
    await async_wait_until(lambda: sim.feedback(1, True), timeout_s=2, what="contact 1 closed")
    await sim.driver.set_contactor(1, False)

    async def welded() -> bool:
        return (await sim.poll()).contactor_faults.get(1) is ContactorFault.WELDED

    await async_wait_until(welded, timeout_s=3, what="connector 1 reported welded")
    assert sim.io.contacts_closed(1) and not sim.io.conducts(1), "the EV gets no power once the coil is off"
    sim.io.clear_faults()
    snapshot = await async_wait_until(lambda: sim.feedback(1, False), timeout_s=2, what="weld cleared")
    assert dict(snapshot.contactor_faults) == {}


async def test_a_contactor_stuck_open_is_reported_as_not_closing(sim: SimIo) -> None:
    sim.io.inject_fault("contactor_stuck_open")
    await sim.driver.set_contactor(2, True)

    async def not_closing() -> bool:
        return (await sim.poll()).contactor_faults.get(2) is ContactorFault.NOT_CLOSING

    await async_wait_until(not_closing, timeout_s=3, what="connector 2 reported not closing")
    assert not sim.io.contacts_closed(2)


async def test_the_fan_fault_shows_on_the_fan_alarm_input(sim: SimIo) -> None:
    await sim.driver.set_fans(True)
    assert (await sim.poll()).fan_alarm is False
    sim.io.inject_fault("fan")

    async def fan_alarm() -> IoSnapshot | None:
        snapshot = await sim.poll()
        return snapshot if snapshot.fan_alarm else None

    assert (await async_wait_until(fan_alarm, timeout_s=2, what="the fan alarm")).fans_on
    with pytest.raises(UnknownFault, match="weld1, weld2, contactor_stuck_open, fan"):
        sim.io.inject_fault("smoke")


async def test_the_estop_cuts_every_coil_without_a_contactor_fault(sim: SimIo) -> None:
    await sim.driver.set_contactor(1, True)
    await async_wait_until(lambda: sim.feedback(1, True), timeout_s=2, what="contact 1 closed")
    await sim.io.set_estop(True)
    snapshot = await async_wait_until(lambda: sim.feedback(1, False), timeout_s=2, what="contact 1 dropped")
    assert snapshot.estop_pressed and snapshot.contactors_closed[1]
    await asyncio.sleep(FEEDBACK_TIMEOUT_S + 0.05)  # still no fault while the e-stop is pressed
    assert dict((await sim.poll()).contactor_faults) == {}
    await sim.io.set_estop(False)
    await async_wait_until(lambda: sim.feedback(1, True), timeout_s=2, what="contact 1 closed again")


async def test_the_host_watchdog_drops_the_outputs_when_polling_stops(watched: SimIo) -> None:
    await watched.driver.set_contactor(1, True)
    await watched.driver.set_fans(True)
    for _ in range(5):  # polled more often than the watchdog: nothing drops
        await watched.io.tick()
        await watched.poll()
        await asyncio.sleep(0.1)
    assert (await watched.poll()).contactors_closed[1]
    await asyncio.sleep(0.4)  # the host is silent for longer than watchdog_s
    await watched.io.tick()
    snapshot = await watched.poll()
    assert not snapshot.outputs_as_commanded
    assert (snapshot.contactors_closed[1], snapshot.fans_on) == (False, False)
    snapshot = await async_wait_until(lambda: watched.feedback(1, False), timeout_s=2, what="contact dropped")
    assert dict(snapshot.contactor_faults) == {}
    await watched.driver.set_contactor(1, True)  # the host's next write sets the output again
    assert (await watched.poll()).contactors_closed[1]


async def test_an_offline_module_answers_with_a_gateway_error_until_back(sim: SimIo) -> None:
    sim.io.set_online(False)
    assert not sim.io.online
    with pytest.raises(DeviceError, match="exception 11"):
        await sim.poll()
    sim.io.set_online(True)
    assert (await sim.poll()).estop_pressed is False


async def test_the_host_cannot_write_inputs_or_use_tables_the_module_lacks() -> None:
    sim_io, server = await start("owen")
    try:
        with pytest.raises(DeviceError, match="exception 2"):
            await sim_io.hub.write_registers(IO_INPUTS, 51, [0xFFFF])
        with pytest.raises(DeviceError, match="exception 1"):
            await sim_io.hub.write_coil(IO, 0, True)
    finally:
        await sim_io.hub.close()
        await server.shutdown()


async def test_an_insulation_fault_drops_r_f_and_trips_the_alarm_input(sim: SimIo) -> None:
    healthy = await sim.imd_driver.poll()
    assert (healthy.resistance_ohm, healthy.insulation_fault) == (HEALTHY_OHM, False)
    sim.imd.inject_fault("insulation")
    await sim.imd.tick()
    await sim.io.tick()
    faulted = await sim.imd_driver.poll()
    assert (faulted.resistance_ohm, faulted.insulation_fault) == (FAULT_OHM, True)
    assert (await sim.poll()).imd_alarm is True
    sim.imd.clear_faults()
    await sim.imd.tick()
    await sim.io.tick()
    assert not (await sim.imd_driver.poll()).insulation_fault
    assert (await sim.poll()).imd_alarm is False


@pytest.mark.parametrize(("fault", "result"), [(None, SelfTestResult.PASSED),
                                                ("self_test_fail", SelfTestResult.FAILED)])
async def test_the_imd_self_test_runs_and_reports(sim: SimIo, fault: str | None,
                                                  result: SelfTestResult) -> None:
    if fault:
        sim.imd.inject_fault(fault)

    async def ticking() -> None:
        while True:
            await sim.imd.tick()
            await asyncio.sleep(0.05)

    ticker = asyncio.create_task(ticking())
    try:
        assert await sim.imd_driver.run_self_test(timeout_s=3, poll_s=0.05) is result
    finally:
        ticker.cancel()
    assert (await sim.imd_driver.poll()).device_error is (result is SelfTestResult.FAILED)


async def test_an_offline_imd_is_a_device_error(sim: SimIo) -> None:
    sim.imd.set_online(False)
    with pytest.raises(DeviceError, match="tcp/3"):
        await sim.imd_driver.poll()
    sim.imd.set_online(True)
    assert (await sim.imd_driver.poll()).resistance_ohm == HEALTHY_OHM


def manage_sim(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", "sim", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def client(sim_station: SimStation) -> Iterator[ModbusTcpClient]:
    with ModbusTcpClient("127.0.0.1", port=sim_station.files.modbus_port) as modbus_client:
        yield modbus_client


def test_sim_door_open_and_close_reach_the_door_switch(sim_station: SimStation,
                                                       client: ModbusTcpClient) -> None:
    def door_switch_closed() -> bool:  # ops/station.sim.toml: DI 1, normally closed
        return client.read_discrete_inputs(1, count=1, device_id=10).bits[0]

    assert door_switch_closed()
    opened = manage_sim(sim_station.env, "door", "open")
    assert (opened.returncode, opened.stdout.strip()) == (0, "sim door: done"), opened
    wait_until(lambda: not door_switch_closed(), timeout_s=5, what="the door switch open")
    assert manage_sim(sim_station.env, "door", "close").returncode == 0
    wait_until(door_switch_closed, timeout_s=5, what="the door switch closed")
    refused = manage_sim(sim_station.env, "door", "ajar")
    assert refused.returncode == 2 and "invalid choice: 'ajar'" in refused.stderr

