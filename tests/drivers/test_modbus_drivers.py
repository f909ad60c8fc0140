"""Meter, controller and IO drivers through a ModbusHub against a real pymodbus server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from tests.drivers.modbus_server import (
    CONTROLLER,
    IO_MODULE,
    METER_ACUDC,
    METER_SDM630,
    SILENT,
    DriverTestServer,
)
from workers.common.station_config import IoModuleConfig
from workers.drivers.controllers.interface import EvState, OutputLimits, SessionPhase
from workers.drivers.controllers.station_dc import StationDcController
from workers.drivers.errors import DeviceError
from workers.drivers.io_module import ContactorWiring, IoModule
from workers.drivers.meter import MeterDriver
from workers.drivers.modbus_hub import ModbusHub


@pytest.fixture
async def server() -> AsyncIterator[DriverTestServer]:
    test_server = DriverTestServer()
    await test_server.start()
    try:
        yield test_server
    finally:
        await test_server.stop()


@pytest.fixture
async def hub(server: DriverTestServer) -> AsyncIterator[ModbusHub]:
    modbus_hub = ModbusHub("testbus", server.bus)
    try:
        yield modbus_hub
    finally:
        await modbus_hub.close()


async def test_sdm630_meter_reads_a_snapshot(hub: ModbusHub) -> None:
    snapshot = await MeterDriver(hub, METER_SDM630, "sdm630").poll()
    assert snapshot.energy_wh == pytest.approx(1_234_500.0)
    assert snapshot.power_w == pytest.approx(11_040.0)
    assert snapshot.voltage_v == pytest.approx(230.1, rel=1e-6)
    assert snapshot.current_a == pytest.approx(16.0)


async def test_acudc243_meter_reads_its_two_blocks(hub: ModbusHub) -> None:
    snapshot = await MeterDriver(hub, METER_ACUDC, "acudc243").poll()
    assert (snapshot.energy_wh, snapshot.power_w) == (pytest.approx(1_234_560.0), pytest.approx(50_200.0))
    assert (snapshot.voltage_v, snapshot.current_a) == (400.0, 125.5)


async def test_controller_poll_and_output(hub: ModbusHub, server: DriverTestServer) -> None:
    controller = StationDcController(hub, CONTROLLER)
    snapshot = await controller.poll()
    assert (snapshot.ev_state, snapshot.soc, snapshot.target_soc, snapshot.ev_max_power_w) == (
        EvState.C, 42.0, 80.0, 50_000.0)
    assert (snapshot.phase, snapshot.present.current_a, snapshot.firmware_version) == (
        SessionPhase.CHARGING, 124.0, "1.2.3")
    await controller.set_output(True, 22_050.0)
    assert server.server is not None
    assert await server.server.async_getValues(CONTROLLER, 3, 0, 2) == [1, 220]  # rounded down
    assert await controller.read_output() == (True, 22_000.0)
    await controller.set_limits(OutputLimits(power_w=30_000.0, current_a=80.0))
    assert await server.server.async_getValues(CONTROLLER, 3, 0, 4) == [1, 300, 800, 0xFFFF]
    await server.server.async_setValues(CONTROLLER, 4, 0, [0, 0xFFFF, 0xFFFF, 0, 7])
    idle = await controller.poll()
    assert (idle.ev_state, idle.soc, idle.error_code) == (EvState.A, None, 7)


@pytest.mark.parametrize(("address", "words"), [(0, [4]), (1, [101]), (6, [40])])
async def test_controller_values_outside_the_protocol_are_a_device_error(
        hub: ModbusHub, server: DriverTestServer, address: int, words: list[int]) -> None:
    assert server.server is not None
    await server.server.async_setValues(CONTROLLER, 4, address, words)
    with pytest.raises(DeviceError, match="bad controller data"):
        await StationDcController(hub, CONTROLLER).poll()


async def test_a_controller_of_another_protocol_version_is_a_device_error(
        hub: ModbusHub, server: DriverTestServer) -> None:
    assert server.server is not None
    await server.server.async_setValues(CONTROLLER, 4, 100, [3])
    with pytest.raises(DeviceError, match="protocol version 3, not 1 or 2"):
        await StationDcController(hub, CONTROLLER).poll()


async def test_io_module_reads_estop_and_switches_contactors(hub: ModbusHub,
                                                             server: DriverTestServer) -> None:
    io = IoModule(hub, IoModuleConfig(bus="testbus", device_id=IO_MODULE, estop_input=3),
                  {1: ContactorWiring(0), 2: ContactorWiring(5)})
    assert server.server is not None
    assert not (await io.poll()).estop_pressed
    await server.server.async_setValues(IO_MODULE, 2, 3, [True])
    await io.set_contactor(2, True)
    assert await server.server.async_getValues(IO_MODULE, 1, 5, 1) == [True]
    snapshot = await io.poll()
    assert snapshot.estop_pressed
    assert dict(snapshot.contactors_closed) == {1: False, 2: True}


async def test_unknown_device_id_is_a_device_error_and_marked_unavailable(hub: ModbusHub, caplog) -> None:
    meter = MeterDriver(hub, 99, "sdm630")
    with caplog.at_level(logging.DEBUG, logger="workers.drivers.modbus_hub"):
        for _ in range(3):
            with pytest.raises(DeviceError, match=r"testbus/99: .*exception 11"):
                await meter.poll()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "only the first failure of an outage is an ERROR"
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 2
    assert not hub.available(99)
    assert hub.available(METER_SDM630)


async def test_a_silent_device_times_out_as_a_device_error(hub: ModbusHub) -> None:
    with pytest.raises(DeviceError, match="testbus/5"):
        await hub.read_registers(SILENT, 3, 0, 2)
    assert (await MeterDriver(hub, METER_SDM630, "sdm630").poll()).power_w == pytest.approx(11_040.0)


async def test_hub_recovers_after_the_server_comes_back(hub: ModbusHub, server: DriverTestServer,
                                                        caplog) -> None:
    meter = MeterDriver(hub, METER_SDM630, "sdm630")
    await meter.poll()
    await server.stop()
    for _ in range(2):  # the broken connection, then a refused reconnect
        with pytest.raises(DeviceError):
            await meter.poll()
    assert not hub.available(METER_SDM630)
    await server.start()
    with caplog.at_level(logging.INFO, logger="workers.drivers.modbus_hub"):
        assert (await meter.poll()).energy_wh == pytest.approx(1_234_500.0)
    assert hub.available(METER_SDM630)
    assert "answers again" in caplog.text


async def test_concurrent_users_of_one_hub_are_serialised(hub: ModbusHub) -> None:
    meter = MeterDriver(hub, METER_SDM630, "sdm630")
    controller = StationDcController(hub, CONTROLLER)
    polls = [meter.poll() for _ in range(10)] + [controller.poll() for _ in range(10)]
    results = await asyncio.gather(*polls)
    assert len(results) == 20


@pytest.mark.parametrize(("call", "error"), [
    (lambda hub: hub.read_registers(1, 1, 0, 1), ValueError),
    (lambda hub: hub.read_registers(1, 4, 0, 126), ValueError),
    (lambda hub: hub.write_registers(1, 0, [70_000]), ValueError),
    (lambda hub: StationDcController(hub, CONTROLLER).set_output(True, -1), ValueError),
])
async def test_programming_errors_are_refused_before_the_wire(hub: ModbusHub, call, error) -> None:
    with pytest.raises(error):
        await call(hub)
