"""Read the (simulated) devices over their wire protocol, as a technician's tool would: the
ground truth tests compare the station's reports against.

A Modbus TCP bus is reached at its address. An RS485 line's own port belongs to the station
process polling it (a serial port has one owner), so the tool plugs into the line's service
drop, `<port>-service` (workers/sim/rtu_line.py), and takes turns with the station there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, ModbusSerialClient, ModbusTcpClient

from webapp.env import StationEnv
from workers.common.station_config import (
    BusConfig,
    ModbusRtuBus,
    ModbusTcpBus,
    StationConfig,
    load_station_config,
)
from workers.drivers.io_module import IoModule
from workers.drivers.meter import MeterDriver
from workers.drivers.modbus_hub import ModbusHub
from workers.sim.rtu_line import service_link

TOOL_TIMEOUT_S = 1.0  # the tool waits its turn behind the station's exchange on a shared line


@dataclass(frozen=True)
class ConnectorHardware:
    contactor_closed: bool
    meter_energy_wh: float
    meter_power_w: float


def load_config(config_path: Path) -> StationConfig:
    """The station.toml a test's simulator runs (`{run_dir}` as the session's data folder)."""
    return load_station_config(config_path, data_dir=StationEnv.from_environ().data_dir)


def tool_bus(bus: BusConfig) -> BusConfig:
    """Where a technician's tool plugs into `bus`."""
    if isinstance(bus, ModbusRtuBus):
        return bus.model_copy(update={"port": str(service_link(bus.port)), "timeout_s": TOOL_TIMEOUT_S})
    return bus


def modbus_buses(config: StationConfig) -> dict[str, ModbusTcpBus | ModbusRtuBus]:
    """The Modbus buses of station.toml (a Mercury line speaks Incotex's own protocol)."""
    return {name: bus for name, bus in config.buses.items() if isinstance(bus, ModbusTcpBus | ModbusRtuBus)}


def tool_hubs(config: StationConfig) -> dict[str, ModbusHub]:
    return {name: ModbusHub(f"tool:{name}", tool_bus(bus)) for name, bus in modbus_buses(config).items()}


class ToolWire:
    """Plain pymodbus clients on every bus at once, for tests that decode words themselves: a
    call (`read_input_registers(0, count=5, device_id=21)`) goes to the bus station.toml puts
    that device id on; an id nobody configured goes to the IO module's bus. Sync or async,
    as the clients are."""

    def __init__(self, config: StationConfig, *, sync: bool) -> None:
        self.clients = {name: _tool_client(tool_bus(bus), sync=sync)
                        for name, bus in modbus_buses(config).items()}
        self._default_bus = config.io_module.bus
        self._bus_of = {config.io_module.device_id: config.io_module.bus}
        for connector in config.connectors:
            for device in (connector.meter, connector.controller):
                if device.bus in self.clients:
                    self._bus_of[device.device_id] = device.bus

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(*args: Any, device_id: int, **kwargs: Any) -> Any:
            client = self.clients[self._bus_of.get(device_id, self._default_bus)]
            return getattr(client, method)(*args, device_id=device_id, **kwargs)
        return call

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@asynccontextmanager
async def tool_wire(config: StationConfig) -> AsyncIterator[ToolWire]:
    wire = ToolWire(config, sync=False)
    try:
        for name, client in wire.clients.items():
            assert await client.connect(), f"the tool cannot reach bus {name!r}"
        yield wire
    finally:
        wire.close()


IO_KEEPALIVE_S = 0.5  # well inside any host watchdog a station.toml sets (ops/station.sim.toml: 2 s)


@asynccontextmanager
async def io_keepalive(config: StationConfig) -> AsyncIterator[None]:
    """Poll the IO module as smartw's guard does, so its host watchdog (`[io_module].watchdog_s`)
    keeps the coils a test closed by hand: for tests that play smartw's part themselves."""
    bus = tool_bus(config.buses[config.io_module.bus])
    client = _tool_client(bus, sync=False)
    assert await client.connect(), "the tool cannot reach the IO module"

    async def poll_forever() -> None:
        while True:
            await client.read_coils(0, count=1, device_id=config.io_module.device_id)
            await asyncio.sleep(IO_KEEPALIVE_S)

    task = asyncio.create_task(poll_forever(), name="test.io_keepalive")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        client.close()


@contextmanager
def sync_tool_wire(config: StationConfig) -> Iterator[ToolWire]:
    wire = ToolWire(config, sync=True)
    try:
        for name, client in wire.clients.items():
            assert client.connect(), f"the tool cannot reach bus {name!r}"
        yield wire
    finally:
        wire.close()


def _tool_client(bus: BusConfig, *, sync: bool) -> Any:
    if isinstance(bus, ModbusRtuBus):
        serial_client = ModbusSerialClient if sync else AsyncModbusSerialClient
        return serial_client(bus.port, framer=FramerType.RTU, baudrate=bus.baudrate, parity=bus.parity,
                             stopbits=bus.stopbits, timeout=bus.timeout_s)
    tcp_client = ModbusTcpClient if sync else AsyncModbusTcpClient
    return tcp_client(bus.host, port=bus.port, timeout=bus.timeout_s)


async def read_connector_hardware(config_path: Path, connector_id: int) -> ConnectorHardware:
    """The contactor coil and the meter of one connector, read over Modbus."""
    config = load_config(config_path)
    hubs = tool_hubs(config)
    try:
        io = IoModule.from_config(config, hubs)
        connector = config.connector(connector_id)
        closed = (await io.read_coils(connector.contactor_coil))[0]
        meter = connector.meter
        snapshot = await MeterDriver(hubs[meter.bus], meter.device_id, meter.model).poll()
        return ConnectorHardware(closed, snapshot.energy_wh, snapshot.power_w)
    finally:
        for hub in hubs.values():
            await hub.close()
