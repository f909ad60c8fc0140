"""`python -m workers.sim` end to end: Modbus TCP, the reader's pty and the bus command.

The test talks to the simulator the way the station does: a plain pymodbus client on the
configured port (words decoded here with struct, independent of the drivers) and pyserial
on the reader's link. Devices (ops/station.sim.toml): connector 1 = CCS, AcuDC 243 meter
id 1, controller id 21, coil 0, fed by power modules pm1 and pm2 (switched on over CAN with
the real driver) through their link contactors on coils 10 and 11; connector 2 = Type2,
SDM630 meter id 2, controller id 22, coil 1; IO module id 10, e-stop on input 0.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator

import pytest
import serial
from pymodbus.client import AsyncModbusTcpClient

from bus import Bus, contract
from bus.messages import CommandResult, SimAction
from tests.sim.module_feed import ModuleFeed, module_feed
from tests.sim.processes import ServiceProcess, SimStation, service_env, write_station_toml
from tests.support.hardware import ToolWire, io_keepalive, load_config, sync_tool_wire, tool_wire
from tests.support.waiting import async_wait_until, wait_until
from workers.common.redis_server import free_port, is_listening, start_redis

IO, CCS_METER, AC_METER, CCS_CTRL, AC_CTRL = 10, 1, 2, 21, 22
CCS_MODULES, CCS_LINK_COILS = ("pm1", "pm2"), (10, 11)  # links pm1>1, pm2>1
MODULE_V, MODULE_A = 410.0, 100.0  # at the simulated pack's maximum: above its voltage
STATE_A, STATE_B, STATE_C = 0, 1, 2
UNKNOWN = 0xFFFF


@pytest.fixture
async def modbus(sim_station: SimStation) -> AsyncIterator[ToolWire]:
    """The IO module on Modbus TCP, meters and controllers on their RS485 lines."""
    config = load_config(sim_station.files.config)
    async with tool_wire(config) as wire, io_keepalive(config):  # the IO watchdog holds the coils
        yield wire


@pytest.fixture
async def modules(bus: Bus, sim_station: SimStation) -> AsyncIterator[ModuleFeed]:
    config = load_config(sim_station.files.config).power_modules
    assert config is not None
    async with module_feed(config, bus) as feed:
        yield feed


async def feed_ccs(client: AsyncModbusTcpClient, modules: ModuleFeed) -> None:
    """Connector 1's power: two modules on, their links to it closed."""
    await modules.switch_on(CCS_MODULES, voltage_v=MODULE_V, current_a=MODULE_A)
    for coil in CCS_LINK_COILS:
        await client.write_coil(coil, True, device_id=IO)


async def sim(bus: Bus, **fields: object) -> CommandResult:
    return await bus.request(contract.SIM, SimAction(**fields))


async def sim_ok(bus: Bus, **fields: object) -> None:
    result = await sim(bus, **fields)
    assert result.accepted, result.reason


async def ccs_meter(client: AsyncModbusTcpClient) -> tuple[float, float]:
    """(energy Wh, power W) of the AcuDC 243: power float32 kW at 0x204, energy uint32 0.01 kWh at 0x300."""
    live = await client.read_holding_registers(0x200, count=6, device_id=CCS_METER)
    energy = await client.read_holding_registers(0x300, count=2, device_id=CCS_METER)
    power_kw = struct.unpack(">f", struct.pack(">2H", *live.registers[4:6]))[0]
    energy_hundredths = struct.unpack(">I", struct.pack(">2H", *energy.registers))[0]
    return energy_hundredths * 10.0, power_kw * 1000.0


async def ac_power_w(client: AsyncModbusTcpClient) -> float:
    words = (await client.read_input_registers(0x34, count=2, device_id=AC_METER)).registers
    return struct.unpack(">f", struct.pack(">2H", *words))[0]


async def ac_energy_wh(client: AsyncModbusTcpClient) -> float:
    words = (await client.read_input_registers(0x48, count=2, device_id=AC_METER)).registers
    return struct.unpack(">f", struct.pack(">2H", *words))[0] * 1000.0


async def let_time_pass(client: AsyncModbusTcpClient, wh: float = 3.0) -> None:
    """Wait for several physics steps without sleeping: connector 2 charging at 11 kW is the
    clock (3 Wh take about a second)."""
    start = await ac_energy_wh(client)

    async def advanced() -> bool:
        return await ac_energy_wh(client) >= start + wh

    await async_wait_until(advanced, what=f"{wh} Wh on connector 2 (the clock)")


async def controller_inputs(client: AsyncModbusTcpClient, device_id: int) -> list[int]:
    return list((await client.read_input_registers(0, count=5, device_id=device_id)).registers)


async def offer(client: AsyncModbusTcpClient, *, coil: int, controller: int, enable: bool,
                limit_hw: int) -> None:
    await client.write_coil(coil, True, device_id=IO)
    await client.write_registers(0, [int(enable), limit_hw], device_id=controller)


async def test_plugged_ev_draws_power_only_with_contactor_closed_and_output_enabled(
        bus: Bus, modbus: AsyncModbusTcpClient, modules: ModuleFeed) -> None:
    await feed_ccs(modbus, modules)
    await sim_ok(bus, action="plug", connector_id=1, soc=30, target_soc=90, max_power_kw=120)
    await async_wait_until(lambda: _state_is(modbus, CCS_CTRL, STATE_C), what="EV asking (state C)")
    inputs = await controller_inputs(modbus, CCS_CTRL)
    assert inputs[1:4] == [UNKNOWN, UNKNOWN, 0]  # CCS: known once authorised (parameter exchange)
    await sim_ok(bus, action="plug", connector_id=2, soc=10, target_soc=90)
    await offer(modbus, coil=1, controller=AC_CTRL, enable=True, limit_hw=110)

    start_wh, _ = await ccs_meter(modbus)
    await offer(modbus, coil=0, controller=CCS_CTRL, enable=False, limit_hw=500)
    await let_time_pass(modbus)
    assert await ccs_meter(modbus) == (start_wh, 0.0), "contactor closed, output disabled: no power"

    await modbus.write_coil(0, False, device_id=IO)
    await modbus.write_registers(0, [1, 500], device_id=CCS_CTRL)
    await let_time_pass(modbus)
    assert await ccs_meter(modbus) == (start_wh, 0.0), "output enabled, contactor open: no power"
    soc, target, max_hw = (await controller_inputs(modbus, CCS_CTRL))[1:4]
    assert (soc, target) == (30, 90) and 1000 < max_hw <= 1200  # EV max 120 kW, less at its voltage

    await modbus.write_coil(0, True, device_id=IO)  # both: 50 kW offered
    await async_wait_until(lambda: _ccs_power_is(modbus, 50_000), what="50 kW on the meter")
    await async_wait_until(lambda: _ccs_energy_above(modbus, start_wh + 20), what="energy to grow")

    await modbus.write_coil(0, False, device_id=IO)
    await async_wait_until(lambda: _ccs_power_is(modbus, 0), what="power to stop with the contactor open")
    stopped_wh, _ = await ccs_meter(modbus)
    assert stopped_wh >= start_wh + 20, "energy is monotonic"


async def test_ev_reaching_its_target_goes_back_to_state_b_and_stops_drawing(
        bus: Bus, modbus: AsyncModbusTcpClient) -> None:
    await sim_ok(bus, action="plug", connector_id=2, soc=79.9, target_soc=80, capacity_kwh=1)
    await offer(modbus, coil=1, controller=AC_CTRL, enable=True, limit_hw=110)
    await async_wait_until(lambda: _state_is(modbus, AC_CTRL, STATE_B), what="EV full (state B)")
    assert await controller_inputs(modbus, AC_CTRL) == [STATE_B, UNKNOWN, UNKNOWN, 0, 0]  # AC: no SoC
    await async_wait_until(lambda: _ac_power_is(modbus, 0.0), what="no power once full")


async def test_unplugged_connector_reads_state_a_and_absent_devices_do_not_answer(
        bus: Bus, modbus: AsyncModbusTcpClient) -> None:
    assert await controller_inputs(modbus, CCS_CTRL) == [STATE_A, UNKNOWN, UNKNOWN, 0, 0]
    absent = await modbus.read_input_registers(0, count=5, device_id=99)
    assert absent.isError() and absent.exception_code == 0x0B  # gateway: target did not respond
    no_coils = await modbus.read_coils(0, count=1, device_id=CCS_METER)
    assert no_coils.isError() and no_coils.exception_code == 0x01  # a meter has no coils
    no_write = await modbus.write_register(0x200, 1, device_id=CCS_METER)
    assert no_write.isError(), "measurements are read-only"

    await sim_ok(bus, action="plug", connector_id=1)
    await async_wait_until(lambda: _state_is(modbus, CCS_CTRL, STATE_C), what="plugged")
    await sim_ok(bus, action="unplug", connector_id=1)
    await async_wait_until(lambda: _state_is(modbus, CCS_CTRL, STATE_A), what="unplugged")


async def test_estop_sets_its_input_and_cuts_power_until_released(
        bus: Bus, modbus: AsyncModbusTcpClient, modules: ModuleFeed) -> None:
    await feed_ccs(modbus, modules)
    await sim_ok(bus, action="plug", connector_id=1)
    await offer(modbus, coil=0, controller=CCS_CTRL, enable=True, limit_hw=300)
    await async_wait_until(lambda: _ccs_power_is(modbus, 30_000), what="charging")

    await sim_ok(bus, action="estop", pressed=True)
    assert (await modbus.read_discrete_inputs(0, count=1, device_id=IO)).bits[0] is True
    await async_wait_until(lambda: _ccs_power_is(modbus, 0), what="e-stop to cut power")

    await sim_ok(bus, action="estop", pressed=False)
    assert (await modbus.read_discrete_inputs(0, count=1, device_id=IO)).bits[0] is False
    await async_wait_until(lambda: _ccs_power_is(modbus, 30_000), what="power back after release")


async def test_swipe_writes_em4100_frames_to_the_reader_port(bus: Bus, sim_station: SimStation) -> None:
    frame = b"\x020A00B1C2D3AA\x03"
    with serial.Serial(str(sim_station.files.rfid_link), 9600, timeout=3) as port:
        await sim_ok(bus, action="swipe", uid="0a00b1c2d3")
        received = port.read(3 * len(frame))
    assert received == frame * 3, "a held card is sent a few times"


IMPOSSIBLE = [  # one simulator answers them all (a simulator per case would be slow)
    ({"action": "plug", "connector_id": 9}, "unknown_connector"),
    ({"action": "unplug", "connector_id": 9}, "unknown_connector"),
    ({"action": "plug"}, "missing_connector_id"),
    ({"action": "unplug", "connector_id": 1}, "not_plugged"),
    ({"action": "plug", "connector_id": 1, "soc": 90, "target_soc": 80}, "soc_above_target"),
    ({"action": "swipe", "uid": "12"}, "invalid_uid"),
    ({"action": "swipe"}, "missing_uid"),
    ({"action": "estop"}, "missing_pressed"),
]


async def test_impossible_actions_are_refused_with_a_reason(bus: Bus, sim_station: SimStation) -> None:
    answers = [(fields, (await sim(bus, **fields)).reason) for fields, _ in IMPOSSIBLE]
    assert answers == [(fields, reason) for fields, reason in IMPOSSIBLE]


async def test_plugging_an_occupied_connector_is_refused(bus: Bus, sim_station: SimStation) -> None:
    await sim_ok(bus, action="plug", connector_id=2)
    refused = await sim(bus, action="plug", connector_id=2)
    assert refused == CommandResult(accepted=False, reason="already_plugged")


def test_sim_removes_its_reader_link_when_it_stops(sim_station: SimStation) -> None:
    link = sim_station.files.rfid_link
    assert link.is_symlink() and str(link.readlink()).startswith("/dev/pts/")
    assert sim_station.process.stop() == 0
    assert not link.exists() and not link.is_symlink()


def test_sim_keeps_its_devices_while_redis_is_down_and_cleans_up_when_stopped(tmp_path) -> None:
    """Hardware does not notice the station's bus: Modbus keeps answering without Redis, and
    the reader's link is still removed when the simulator stops during the outage."""
    port = free_port()
    redis_process = start_redis(port, tmp_path / "redis")
    files = write_station_toml(tmp_path)
    env = {**service_env(files), "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    process = ServiceProcess("workers.sim", env, tmp_path / "sim.log")
    try:
        wait_until(lambda: is_listening("127.0.0.1", files.modbus_port) and files.rfid_link.is_symlink(),
                   timeout_s=15, what="the simulator to listen")
        redis_process.terminate()
        redis_process.wait(timeout=10)
        wait_until(lambda: "lost Redis" in process.output(), timeout_s=15, what="the sim to notice")
        with sync_tool_wire(load_config(files.config)) as client:
            assert client.read_input_registers(0, count=5, device_id=CCS_CTRL).registers[0] == STATE_A
    finally:
        redis_process.kill()
        assert process.stop() == 0, process.output()
    assert not files.rfid_link.is_symlink(), process.output()


def test_sim_refuses_wiring_it_cannot_serve(redis_client, tmp_path) -> None:
    files = write_station_toml(tmp_path)
    text = files.config.read_text().replace("device_id = 2, model", "device_id = 1, model")
    files.config.write_text(text)
    process = ServiceProcess("workers.sim", service_env(files), tmp_path / "sim.log")
    wait_until(lambda: not process.running(), timeout_s=15, what="the simulator to give up")
    assert process.stop() != 0
    assert "device id 1 on bus 'rs485_meters' is used twice" in process.output()
    assert not files.rfid_link.exists()


def test_sim_reports_a_taken_port_and_leaves_no_link(redis_client, tmp_path) -> None:
    files = write_station_toml(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", files.modbus_port))
        taken.listen()
        process = ServiceProcess("workers.sim", service_env(files), tmp_path / "sim.log")
        wait_until(lambda: not process.running(), timeout_s=15, what="the simulator to give up")
    assert process.stop() != 0
    assert f"bus 'sim_tcp' cannot listen on 127.0.0.1:{files.modbus_port}" in process.output()
    assert not files.rfid_link.exists() and not files.rfid_link.is_symlink()


async def _state_is(client: AsyncModbusTcpClient, controller: int, state: int) -> bool:
    return (await controller_inputs(client, controller))[0] == state


async def _ccs_power_is(client: AsyncModbusTcpClient, watts: float) -> bool:
    return abs((await ccs_meter(client))[1] - watts) < 1


async def _ccs_energy_above(client: AsyncModbusTcpClient, wh: float) -> bool:
    return (await ccs_meter(client))[0] > wh


async def _ac_power_is(client: AsyncModbusTcpClient, watts: float) -> bool:
    return abs(await ac_power_w(client) - watts) < 1
