"""The hub on an RS485 line: Modbus RTU through pyserial, against a pymodbus serial server.

The line is two pseudo-terminal pairs bridged in this process (reference/hardware.md §8):
the server opens one slave, the hub opens the other, bytes are copied between the masters.
"""

from __future__ import annotations

import asyncio
import os
import pty
import tty
from collections.abc import AsyncIterator

import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer

from tests.drivers.modbus_server import CONTROLLER, METER_SDM630, station_devices
from workers.common.station_config import ModbusRtuBus
from workers.drivers.controller import ChargeController, EvState
from workers.drivers.errors import DeviceError
from workers.drivers.meter import MeterDriver
from workers.drivers.modbus_hub import ModbusHub


class BridgedLine:
    """Two pty pairs whose masters are joined: a null-modem cable between two /dev/pts."""

    def __init__(self) -> None:
        self.ends = [pty.openpty(), pty.openpty()]
        for master, slave in self.ends:
            tty.setraw(slave)
            os.set_blocking(master, False)
        self.paths = [os.ttyname(slave) for _, slave in self.ends]

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        (a, _), (b, _) = self.ends
        loop.add_reader(a, self._copy, a, b)
        loop.add_reader(b, self._copy, b, a)

    @staticmethod
    def _copy(source: int, target: int) -> None:
        try:
            os.write(target, os.read(source, 4096))
        except OSError:  # a side closed its slave (test teardown): the cable is cut
            asyncio.get_running_loop().remove_reader(source)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for master, slave in self.ends:
            loop.remove_reader(master)
            os.close(master)
            os.close(slave)


@pytest.fixture
async def rtu_hub() -> AsyncIterator[ModbusHub]:
    line = BridgedLine()
    line.start()
    server = ModbusSerialServer(station_devices(), framer=FramerType.RTU, port=line.paths[0],
                                baudrate=19200)
    await server.serve_forever(background=True)
    hub = ModbusHub("rs485", ModbusRtuBus(kind="modbus_rtu", port=line.paths[1], baudrate=19200,
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
    controller = ChargeController(rtu_hub, CONTROLLER)
    assert (await controller.poll()).ev_state is EvState.C
    await controller.set_output(True, 7_400)
    assert await controller.read_output() == (True, 7_400.0)


async def test_devices_sharing_the_line_are_polled_one_at_a_time(rtu_hub: ModbusHub) -> None:
    meter = MeterDriver(rtu_hub, METER_SDM630, "sdm630")
    controller = ChargeController(rtu_hub, CONTROLLER)
    results = await asyncio.gather(*[meter.poll() for _ in range(5)],
                                   *[controller.poll() for _ in range(5)])
    assert len(results) == 10


async def test_unknown_device_on_the_line_is_a_device_error(rtu_hub: ModbusHub) -> None:
    with pytest.raises(DeviceError, match="rs485/77"):
        await MeterDriver(rtu_hub, 77, "sdm630").poll()
    assert (await MeterDriver(rtu_hub, METER_SDM630, "sdm630").poll()).power_w == pytest.approx(11_040)
