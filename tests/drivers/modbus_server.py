"""A real pymodbus TCP server on a free port for driver tests, restartable on the same port."""

from __future__ import annotations

from collections.abc import Callable

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from workers.common.redis_server import free_port
from workers.common.station_config import ModbusTcpBus

METER_SDM630 = 1
METER_ACUDC = 2
IO_MODULE = 10
CONTROLLER = 21
SILENT = 5  # configured, but its answers are lost (a dead RS485 device behind a gateway)


def bits(count: int = 16) -> list[SimData]:
    return [SimData(0, values=[False] * count, datatype=DataType.BITS)]


def registers(address: int, words: list[int]) -> list[SimData]:
    return [SimData(address, values=words, datatype=DataType.REGISTERS)]


def none() -> list[SimData]:
    return [SimData(0, count=1, datatype=DataType.INVALID)]


def sdm630_words() -> list[int]:
    """FC04 0x00..0x4B: 230.1 V, 16 A, 11040 W, 1234.5 kWh (float32 ABCD, literal words)."""
    words = [0] * 0x4C
    words[0x00:0x02], words[0x06:0x08] = [0x4366, 0x199A], [0x4180, 0]
    words[0x34:0x36], words[0x48:0x4A] = [0x462C, 0x8000], [0x449A, 0x5000]
    return words


# docs/controller-protocol.md v1: a CCS EV charging at 124 A of the 125 A it asks for, at 371 V
CONTROLLER_INPUTS = [2, 42, 80, 500, 0, 1, 6, 0, 3712, 1250, 4100, 2439, 3710, 1240]
CONTROLLER_IDENTITY = [1, 1, 2, 3, 0]  # protocol 1, firmware 1.2.3, application mode


def station_devices() -> list[SimDevice]:
    from workers.sim.devices import absent_devices

    acudc = [0] * 0x10A
    acudc[0:6] = [0x43C8, 0, 0x42FB, 0, 0x4248, 0xCCCD]  # 0x200: 400 V, 125.5 A, 50.2 kW
    acudc[0x100:0x102] = [0x0001, 0xE240]  # 0x300: 1234.56 kWh
    return [
        absent_devices(),
        SimDevice(METER_SDM630, (bits(), bits(), none(), registers(0, sdm630_words()))),
        SimDevice(METER_ACUDC, (bits(), bits(), registers(0x200, acudc), none())),
        SimDevice(IO_MODULE, (bits(), bits(), none(), none())),
        SimDevice(CONTROLLER, (bits(), bits(), registers(0, [0, 0, 0xFFFF, 0xFFFF]) + registers(10, [0]),
                               registers(0, CONTROLLER_INPUTS) + registers(100, CONTROLLER_IDENTITY))),
        SimDevice(SILENT, (bits(), bits(), registers(0, [1, 2]), registers(0, [1, 2]))),
    ]


def _drop_silent_replies(sending: bool, data: bytes) -> bytes:
    """MBAP byte 6 is the unit id: swallow what the silent device 'says'."""
    return b"" if sending and len(data) > 6 and data[6] == SILENT else data


class DriverTestServer:
    def __init__(self, make_devices: Callable[[], list[SimDevice]] = station_devices) -> None:
        self.port = free_port()
        self.make_devices = make_devices
        self.server: ModbusTcpServer | None = None

    @property
    def bus(self) -> ModbusTcpBus:
        return ModbusTcpBus(kind="modbus_tcp", host="127.0.0.1", port=self.port, timeout_s=0.3)

    async def start(self) -> ModbusTcpServer:
        self.server = ModbusTcpServer(self.make_devices(), address=("127.0.0.1", self.port),
                                      trace_packet=_drop_silent_replies)
        await self.server.serve_forever(background=True)
        return self.server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None
