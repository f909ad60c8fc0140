"""The hub on an RS485 line to a plain pymodbus serial server (no device switches in between).

The line is the simulator's two bridged pty pairs (workers/sim/rtu_line.py, reference/
hardware.md §8) without wire delay; the server answers as pymodbus does by itself, so these
tests pin the hub to the library: reads, one transaction at a time, an exception answer.
tests/drivers/test_rtu_line.py covers the line's bad inputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer

from tests.drivers.modbus_server import CONTROLLER, CONTROLLER_INPUTS, METER_SDM630, station_devices
from workers.common.station_config import ModbusRtuBus
from workers.drivers.errors import DeviceError
from workers.drivers.meter import MeterDriver
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import FunctionCode
from workers.sim.rtu_line import LineTiming, RtuLine

BAUDRATE = 19200


@pytest.fixture
async def rtu_hub(tmp_path: Path) -> AsyncIterator[ModbusHub]:
    link = tmp_path / "ttyRS485"
    line = RtuLine([link], LineTiming(BAUDRATE, 10), answer_wait_s=0.3)
    line.wire_delay = False
    line.open()
    server = ModbusSerialServer(station_devices(), framer=FramerType.RTU, port=line.device_port,
                                baudrate=BAUDRATE)
    await server.serve_forever(background=True)
    hub = ModbusHub("rs485", ModbusRtuBus(kind="modbus_rtu", port=str(link), baudrate=BAUDRATE,
                                          timeout_s=0.3, inter_frame_delay_s=0.002))
    try:
        yield hub
    finally:
        await hub.close()
        await server.shutdown()
        line.close()


async def test_meter_and_controller_read_over_rtu(rtu_hub: ModbusHub) -> None:
    snapshot = await MeterDriver(rtu_hub, METER_SDM630, "sdm630").poll()
    assert snapshot.energy_wh == pytest.approx(1_234_500.0)
    inputs = await rtu_hub.read_registers(CONTROLLER, FunctionCode.READ_INPUT_REGISTERS, 0,
                                            len(CONTROLLER_INPUTS))
    assert inputs == CONTROLLER_INPUTS
    await rtu_hub.write_registers(CONTROLLER, 0, [1, 74])
    assert await rtu_hub.read_registers(CONTROLLER, FunctionCode.READ_HOLDING_REGISTERS, 0, 2) == [1, 74]


async def test_devices_sharing_the_line_are_polled_one_at_a_time(rtu_hub: ModbusHub) -> None:
    meter = MeterDriver(rtu_hub, METER_SDM630, "sdm630")
    controller = [rtu_hub.read_registers(CONTROLLER, FunctionCode.READ_INPUT_REGISTERS, 0,
                                            len(CONTROLLER_INPUTS))
                  for _ in range(5)]
    results = await asyncio.gather(*[meter.poll() for _ in range(5)], *controller)
    assert results[5:] == [CONTROLLER_INPUTS] * 5


async def test_an_exception_answer_is_a_device_error_and_not_retried(rtu_hub: ModbusHub) -> None:
    """pymodbus' id-0 device here answers 0x0B for every unknown id, as a gateway would."""
    with pytest.raises(DeviceError, match=r"rs485/77: FC04 @0\+2: answered Modbus exception 11"):
        await rtu_hub.read_registers(77, FunctionCode.READ_INPUT_REGISTERS, 0, 2)
    assert await rtu_hub.read_registers(METER_SDM630, FunctionCode.READ_INPUT_REGISTERS, 0, 2) == [
        0x4366, 0x199A]
