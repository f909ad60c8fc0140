"""The hub against the simulator's RS485 line (workers/sim/rtu_line.py) over real ptys.

The devices of tests/drivers/modbus_server.py answer from a pymodbus RTU server at the far
end of the line; the hub opens the station's drop by its link, as in the station. Every bad
input the line can produce must end as a DeviceError naming it, logged at ERROR once per
outage, while the other devices on the line keep answering; no stale value is returned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.server import ModbusTcpServer

from bus import Bus, contract
from tests.drivers.modbus_server import (
    CONTROLLER,
    CONTROLLER_INPUTS,
    IO_MODULE,
    METER_ACUDC,
    METER_SDM630,
    SILENT,
    station_devices,
)
from tests.support.waiting import async_wait_until
from webapp.env import REPO_ROOT
from workers.common.device_status import DeviceStatusPublisher
from workers.common.redis_server import free_port
from workers.common.station_config import ModbusRtuBus, ModbusTcpBus, load_station_config
from workers.drivers.errors import DeviceError
from workers.drivers.meter import MeterDriver
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import FunctionCode
from workers.sim.modbus_answers import LINE_NOISE, DeviceAnswers, WireFault, device_switch, rtu_frame
from workers.sim.rtu_line import SimulatedRtuBus, service_link
from workers.sim.station import SimStation

TIMEOUT_S = 0.1
FC03, FC04 = FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS
VOLTAGE_WORDS = [0x4366, 0x199A]  # FC04 @0 of the SDM630: 230.1 V
VOLTAGE_BYTES = bytes.fromhex("4366199a")
HUB_LOG = "workers.drivers.modbus_hub"


def bus_config(link: Path, baudrate: int, **overrides: Any) -> ModbusRtuBus:
    settings: dict[str, Any] = {"timeout_s": TIMEOUT_S, "inter_frame_delay_s": 0.002,
                                "late_answer_window_s": 0.1, "retries": 1, **overrides}
    return ModbusRtuBus(kind="modbus_rtu", port=str(link), baudrate=baudrate, **settings)


@dataclass
class Line:
    sim: SimulatedRtuBus
    hub: ModbusHub

    def switch(self, device_id: int):
        return self.sim.answers.switches[device_id]

    async def set_words(self, device_id: int, function_code: int, address: int, words: list[int]) -> None:
        assert self.sim.server is not None
        await self.sim.server.async_setValues(device_id, function_code, address, words)


@asynccontextmanager
async def open_line(folder: Path, baudrate: int = 115200, **overrides: Any) -> AsyncIterator[Line]:
    """The simulated line with the test devices (SILENT is not configured: it stays silent)."""
    config = bus_config(folder / "ttyRS485", baudrate, **overrides)
    switches = {i: device_switch(f"device{i}", serial=True)
                for i in (METER_SDM630, METER_ACUDC, IO_MODULE, CONTROLLER)}
    sim = SimulatedRtuBus(config, station_devices(), switches)
    await sim.start()
    hub = ModbusHub("rs485", config)
    try:
        yield Line(sim, hub)
    finally:
        await hub.close()
        await sim.stop()


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[Line]:
    async with open_line(tmp_path) as opened:
        yield opened


async def controller_answers(hub: ModbusHub) -> bool:
    return await hub.read_registers(CONTROLLER, FC04, 0, len(CONTROLLER_INPUTS)) == CONTROLLER_INPUTS


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == HUB_LOG and r.levelno == logging.ERROR]


@pytest.mark.parametrize("baudrate", [9600, 115200])
async def test_meter_and_controller_answer_over_the_line(tmp_path: Path, baudrate: int) -> None:
    async with open_line(tmp_path, baudrate, timeout_s=0.5) as opened:  # 76 registers: 0.17 s at 9600
        snapshot = await MeterDriver(opened.hub, METER_SDM630, "sdm630").poll()
        assert (snapshot.energy_wh, snapshot.power_w) == (pytest.approx(1_234_500.0), pytest.approx(11_040.0))
        assert await controller_answers(opened.hub)
        await opened.hub.write_registers(CONTROLLER, 0, [1, 74])
        assert await opened.hub.read_registers(CONTROLLER, FC03, 0, 2) == [1, 74]


async def test_wire_delay_makes_a_read_take_at_least_its_wire_time(tmp_path: Path) -> None:
    async with open_line(tmp_path, 9600, timeout_s=1.0) as opened:
        line = opened.sim.line

        async def timed_read() -> tuple[float, float]:
            carried, started = line.bytes_carried, time.perf_counter()
            await opened.hub.read_registers(METER_SDM630, FC04, 0, 76)
            floor = line.timing.wire_time_s(line.bytes_carried - carried)
            return time.perf_counter() - started, floor

        line.wire_delay = False
        fast, floor = await timed_read()
        line.wire_delay = True
        slow, same_floor = await timed_read()
    assert floor == same_floor == pytest.approx((8 + 5 + 152) * 10 / 9600)
    assert slow >= floor > fast


async def test_an_unconfigured_device_is_silent_and_the_others_still_answer(line: Line) -> None:
    for device_id in (SILENT, 77):
        with pytest.raises(DeviceError, match=rf"rs485/{device_id}: .*no answer within 0.1 s"):
            await line.hub.read_registers(device_id, FC04, 0, 2)
    assert await line.hub.read_registers(METER_SDM630, FC04, 0, 2) == VOLTAGE_WORDS
    assert not line.hub.available(SILENT) and line.hub.available(METER_SDM630)


async def test_a_meter_going_offline_mid_session_is_silent_until_it_is_back(
        line: Line, caplog: pytest.LogCaptureFixture) -> None:
    meter = MeterDriver(line.hub, METER_SDM630, "sdm630")
    await meter.poll()
    line.switch(METER_SDM630).set_online(False)
    with caplog.at_level(logging.DEBUG, logger=HUB_LOG):
        for _ in range(2):
            with pytest.raises(DeviceError, match="no answer within"):
                await meter.poll()
        assert await controller_answers(line.hub)
        line.switch(METER_SDM630).set_online(True)
        assert (await meter.poll()).energy_wh == pytest.approx(1_234_500.0)
    assert len(errors_logged(caplog)) == 1
    assert "Modbus device rs485/1 answers again" in caplog.text


@pytest.mark.parametrize(("fault", "reason"), [
    (WireFault.CRC, r"CRC error in the answer \(01 04 04 43 66 19 9a"),
    (WireFault.WRONG_DEVICE, "the answer came from device id 2"),
    (WireFault.PARTIAL_FRAME, r"partial frame: 4 of 9 bytes \(01 04 04 43\)"),
    (WireFault.GARBAGE, "garbage on the line: 8 bytes"),
    (WireFault.LATE_ANSWER, r"answered after the 0.1 s timeout \(the late answer was discarded\)"),
])
async def test_a_bad_answer_is_a_named_device_error_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, fault: WireFault, reason: str) -> None:
    """(Without retries, which test_one_garbled_answer_is_asked_again covers, to stay quick.)"""
    async with open_line(tmp_path, retries=0) as line:
        line.switch(METER_SDM630).inject_fault(fault)
        with caplog.at_level(logging.DEBUG, logger=HUB_LOG):
            for _ in range(2):
                with pytest.raises(DeviceError, match=rf"rs485/1: FC04 @0\+2: {reason}"):
                    await line.hub.read_registers(METER_SDM630, FC04, 0, 2)
                assert await controller_answers(line.hub)
            assert not line.hub.available(METER_SDM630)
            line.switch(METER_SDM630).clear_faults()
            assert await line.hub.read_registers(METER_SDM630, FC04, 0, 2) == VOLTAGE_WORDS
        assert len(errors_logged(caplog)) == 1, errors_logged(caplog)
        assert line.hub.available(METER_SDM630)


async def test_one_garbled_answer_is_asked_again_without_an_error(
        line: Line, caplog: pytest.LogCaptureFixture) -> None:
    line.sim.answers.fault_next(METER_SDM630, WireFault.CRC)
    with caplog.at_level(logging.DEBUG, logger=HUB_LOG):
        assert await line.hub.read_registers(METER_SDM630, FC04, 0, 2) == VOLTAGE_WORDS
    assert not errors_logged(caplog)
    assert "CRC error in the answer" in caplog.text and "asking again" in caplog.text
    line.sim.answers.fault_next(METER_SDM630, WireFault.CRC, answers=2)
    with pytest.raises(DeviceError, match="CRC error"):
        await line.hub.read_registers(METER_SDM630, FC04, 0, 2)


async def test_a_silent_device_is_not_asked_again(line: Line) -> None:
    line.switch(METER_SDM630).set_online(False)
    carried = line.sim.line.bytes_carried
    with pytest.raises(DeviceError, match="no answer"):
        await line.hub.read_registers(METER_SDM630, FC04, 0, 2)
    assert line.sim.line.bytes_carried - carried == 8, "one request, no retry"


async def test_bytes_waiting_before_a_request_are_never_its_answer(line: Line) -> None:
    """A complete, valid old answer of the same device waits on the port; the read must
    return the registers as they are now."""
    line.sim.line.wire_delay = False
    await line.hub.read_registers(METER_SDM630, FC04, 0, 2)  # the port is open
    await line.set_words(METER_SDM630, FC04, 0, [0x4367, 0])
    line.sim.line.inject_noise(rtu_frame(METER_SDM630, bytes([4, 4, *VOLTAGE_BYTES])))
    assert await line.hub.read_registers(METER_SDM630, FC04, 0, 2) == [0x4367, 0]


async def test_noise_between_exchanges_does_not_spoil_the_next_answer(line: Line) -> None:
    await line.hub.read_registers(METER_SDM630, FC04, 0, 2)
    for noise in (LINE_NOISE, b"\x01\x04", bytes(range(40))):
        line.sim.line.inject_noise(noise)
        assert await line.hub.read_registers(METER_SDM630, FC04, 0, 2) == VOLTAGE_WORDS


async def test_a_late_answer_is_discarded_and_the_next_read_is_fresh(line: Line) -> None:
    line.switch(METER_SDM630).inject_fault(WireFault.LATE_ANSWER)
    with pytest.raises(DeviceError, match="late answer was discarded"):
        await line.hub.read_registers(METER_SDM630, FC04, 0, 2)
    line.switch(METER_SDM630).clear_faults()
    await line.set_words(METER_SDM630, FC04, 0, [0x4367, 0])
    assert await line.hub.read_registers(METER_SDM630, FC04, 0, 2) == [0x4367, 0]


async def test_a_stray_answer_during_an_exchange_is_refused_not_decoded(tmp_path: Path) -> None:
    """While the hub waits for 4 registers, an old 2-register answer of the same device
    arrives (pymodbus only checks the device id on RTU)."""
    async with open_line(tmp_path, retries=0) as opened:
        opened.switch(METER_SDM630).set_online(False)
        stray = rtu_frame(METER_SDM630, bytes([4, 4, *VOLTAGE_BYTES]))
        asyncio.get_running_loop().call_later(TIMEOUT_S / 4, opened.sim.line.transmit_from_device, stray)
        with pytest.raises(DeviceError, match="answer carries 2 registers, asked for 4"):
            await opened.hub.read_registers(METER_SDM630, FC04, 0x48, 4)


async def test_pymodbus_alone_takes_any_answer_from_the_right_device_id(line: Line) -> None:
    """What pymodbus 3.16.1 checks on RTU (why the hub checks the rest): a frame from another
    device id is skipped (the read times out), one from the asked id is taken whatever it
    carries; the transaction id is always 0 on RTU."""
    line.switch(METER_SDM630).set_online(False)
    client = AsyncModbusSerialClient(line.sim.config.port, framer=FramerType.RTU, baudrate=115200,
                                     timeout=TIMEOUT_S * 3, retries=0)
    assert await client.connect()
    try:
        for device_id in (METER_SDM630, METER_ACUDC):
            stray = rtu_frame(device_id, bytes([4, 4, *VOLTAGE_BYTES]))
            asyncio.get_running_loop().call_later(TIMEOUT_S / 4, line.sim.line.transmit_from_device, stray)
            if device_id == METER_SDM630:
                answer = await client.read_input_registers(0x48, count=4, device_id=METER_SDM630)
                assert (answer.registers, answer.transaction_id) == (VOLTAGE_WORDS, 0)
            else:
                with pytest.raises(ModbusIOException, match="No response received"):
                    await client.read_input_registers(0x48, count=4, device_id=METER_SDM630)
    finally:
        client.close()


async def test_the_service_drop_shares_the_line_with_the_station(line: Line) -> None:
    service = ModbusHub("service", bus_config(service_link(line.sim.config.port), 115200))
    try:
        reads = [hub.read_registers(METER_SDM630, FC04, 0, 2) for hub in (line.hub, service) * 10]
        assert await asyncio.gather(*reads) == [VOLTAGE_WORDS] * 20
    finally:
        await service.close()


async def test_a_silent_meter_is_unavailable_on_the_bus_within_two_polls(line: Line, bus: Bus) -> None:
    """The counters' pattern: each poll's outcome goes to DeviceStatusPublisher."""
    publisher = DeviceStatusPublisher(bus)
    meter = MeterDriver(line.hub, METER_SDM630, "sdm630")

    async def poll() -> None:
        try:
            await meter.poll()
        except DeviceError as error:
            await publisher.failed("meter:connector1", error.reason, bus_name="rs485")
        else:
            await publisher.succeeded("meter:connector1", bus_name="rs485")

    async def state_is(available: bool) -> bool:
        state = await bus.get(contract.DEVICE, device="meter:connector1")
        return state is not None and state.available is available

    await poll()
    assert await state_is(True)
    line.switch(METER_SDM630).set_online(False)
    await poll()
    assert await state_is(True), "one failed poll is not an outage yet"
    await poll()
    state = await bus.get(contract.DEVICE, device="meter:connector1")
    assert state is not None and not state.available and "no answer" in state.reason
    line.switch(METER_SDM630).set_online(True)
    await poll()
    assert await state_is(True)


async def test_the_hub_reopens_the_port_after_the_line_restarts(line: Line) -> None:
    assert await line.hub.read_registers(METER_SDM630, FC04, 0, 2) == VOLTAGE_WORDS
    await line.sim.stop()
    await line.sim.start()

    async def answers() -> bool:
        try:
            return await line.hub.read_registers(METER_SDM630, FC04, 0, 2) == VOLTAGE_WORDS
        except DeviceError:
            return False

    await async_wait_until(answers, timeout_s=5, what="the hub to read through the new line")


async def test_on_modbus_tcp_an_offline_device_answers_like_a_gateway(tmp_path: Path) -> None:
    """Behind a Modbus TCP gateway a silent RS485 device is exception 0x0B, not a timeout."""
    port = free_port()
    switches = {METER_SDM630: device_switch("meter1", serial=False)}
    server = ModbusTcpServer(station_devices(), address=("127.0.0.1", port),
                             trace_packet=DeviceAnswers(switches).trace_tcp)
    await server.serve_forever(background=True)
    hub = ModbusHub("tcp", ModbusTcpBus(kind="modbus_tcp", host="127.0.0.1", port=port, timeout_s=0.5))
    try:
        switches[METER_SDM630].set_online(False)
        with pytest.raises(DeviceError, match="answered Modbus exception 11"):
            await hub.read_registers(METER_SDM630, FC04, 0, 2)
        switches[METER_SDM630].set_online(True)
        assert await hub.read_registers(METER_SDM630, FC04, 0, 2) == VOLTAGE_WORDS
    finally:
        await hub.close()
        await server.shutdown()


async def test_the_simulated_station_serves_its_rs485_lines_with_named_switches(tmp_path: Path) -> None:
    """ops/station.sim.toml: meters and controllers on RS485 lines, the IO module on TCP."""
    text = (REPO_ROOT / "ops" / "station.sim.toml").read_text(encoding="utf-8")
    path = tmp_path / "station.toml"
    path.write_text(text.replace("port = 15020", f"port = {free_port()}"), encoding="utf-8")
    config = load_station_config(path, data_dir=tmp_path)
    station = SimStation(config, tmp_path / "meters.json")
    await station.start()
    meters = config.buses["rs485_meters"]
    assert isinstance(meters, ModbusRtuBus)
    hub = ModbusHub("tool", bus_config(service_link(meters.port), 115200))
    try:
        assert {"meter1", "meter2", "controller1", "controller2", "io"} <= {
            switch.name for switch in station.wire_switches()}
        assert len(await hub.read_registers(1, FunctionCode.READ_HOLDING_REGISTERS, 0x300, 2)) == 2
        next(s for s in station.wire_switches() if s.name == "meter1").set_online(False)
        with pytest.raises(DeviceError, match="no answer"):
            await hub.read_registers(1, FunctionCode.READ_HOLDING_REGISTERS, 0x300, 2)
        assert station.rtu_bus("rs485_meters").line.timing.baudrate == 115200
    finally:
        await hub.close()
        await station.stop()
    assert not Path(meters.port).exists() and not service_link(meters.port).exists()
