"""One hub per physical Modbus bus (STYLE habit 7, after Home Assistant's modbus hub).

Every device on a bus (meters, controllers, the IO module) shares one hub, so one
transaction is on the wire at a time: an asyncio lock wraps each one, and on RS485 a
quiet gap (`inter_frame_delay_s`) follows it. A failure is logged at ERROR the first time
per device and at DEBUG while it lasts, then once at INFO on recovery, so a dead meter does
not flood the error log. Whatever pymodbus or the OS raises becomes `DeviceError` here, the
one place library errors are translated.

The hub connects lazily and reconnects on the next transaction after the link broke
(pymodbus' own background reconnect is off: the pollers' cadence is the retry).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.pdu import ModbusPDU

from workers.common.station_config import BusConfig, ModbusRtuBus, ModbusTcpBus, StationConfig
from workers.drivers.errors import DeviceError
from workers.drivers.registers import FunctionCode

log = logging.getLogger(__name__)

TCP_RETRIES = 0  # TCP delivers or fails; a missing answer means the device is gone
RTU_RETRIES = 1  # one retry rides out a corrupted RS485 frame
MAX_READ_REGISTERS = 125  # Modbus limit per read request (Application Protocol §6.3)
MAX_READ_BITS = 2000

_READS: dict[FunctionCode, str] = {
    FunctionCode.READ_COILS: "read_coils",
    FunctionCode.READ_DISCRETE_INPUTS: "read_discrete_inputs",
    FunctionCode.READ_HOLDING_REGISTERS: "read_holding_registers",
    FunctionCode.READ_INPUT_REGISTERS: "read_input_registers",
}


def _quiet_library_logging() -> None:
    """pymodbus logs every missing answer at ERROR itself; the hub logs failures (once per
    outage, with the device's name), so the library's own lines would only flood error.log."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class ModbusHub:
    """Serialised access to the devices of one bus (`[buses.<name>]` in station.toml)."""

    def __init__(self, name: str, config: BusConfig) -> None:
        _quiet_library_logging()
        self.name = name
        self.config = config
        self._client = _make_client(config)
        self._lock = asyncio.Lock()
        self._frame_gap_s = config.inter_frame_delay_s if isinstance(config, ModbusRtuBus) else 0.0
        self._failing: set[int] = set()

    def available(self, device_id: int) -> bool:
        """False while the device's last transaction failed (mark it unavailable, never stale)."""
        return device_id not in self._failing

    def device_name(self, device_id: int) -> str:
        return f"{self.name}/{device_id}"

    async def read_registers(self, device_id: int, table: FunctionCode, address: int,
                             count: int) -> list[int]:
        """Read `count` holding (FC03) or input (FC04) registers from `address` (0-based)."""
        if table not in (FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS):
            raise ValueError(f"{table!r} does not read registers")
        _check_count(count, MAX_READ_REGISTERS)
        response = await self._read(device_id, table, address, count)
        if len(response.registers) < count:
            raise self._failed(device_id, f"FC{table:02d} @{address}",
                               f"short answer: {len(response.registers)} of {count} registers")
        return list(response.registers[:count])

    async def read_bits(self, device_id: int, table: FunctionCode, address: int, count: int) -> list[bool]:
        """Read `count` coils (FC01) or discrete inputs (FC02) from `address` (0-based)."""
        if table not in (FunctionCode.READ_COILS, FunctionCode.READ_DISCRETE_INPUTS):
            raise ValueError(f"{table!r} does not read bits")
        _check_count(count, MAX_READ_BITS)
        response = await self._read(device_id, table, address, count)
        if len(response.bits) < count:
            raise self._failed(device_id, f"FC{table:02d} @{address}",
                               f"short answer: {len(response.bits)} of {count} bits")
        return [bool(bit) for bit in response.bits[:count]]

    async def write_coil(self, device_id: int, address: int, value: bool) -> None:
        """Write one coil (FC05)."""
        await self._transact(device_id, f"FC05 @{address}",
                             lambda: self._client.write_coil(address, value, device_id=device_id))

    async def write_registers(self, device_id: int, address: int, values: list[int]) -> None:
        """Write holding registers (FC16), in one request so the device sees them together."""
        if not values or any(not 0 <= value <= 0xFFFF for value in values):
            raise ValueError(f"register values must be a non-empty list of 0..65535, got {values}")
        await self._transact(device_id, f"FC16 @{address}",
                             lambda: self._client.write_registers(address, values, device_id=device_id))

    async def close(self) -> None:
        async with self._lock:
            self._client.close()

    async def _read(self, device_id: int, table: FunctionCode, address: int, count: int) -> ModbusPDU:
        method = getattr(self._client, _READS[table])
        return await self._transact(device_id, f"FC{table:02d} @{address}+{count}",
                                    lambda: method(address, count=count, device_id=device_id))

    async def _transact(self, device_id: int, what: str,
                        call: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        async with self._lock:
            try:
                response = await self._call(call)
            except (ModbusException, OSError, TimeoutError) as error:
                if not self._client.connected:
                    self._client.close()
                raise self._failed(device_id, what, _describe(error)) from error
            finally:
                if self._frame_gap_s:
                    await asyncio.sleep(self._frame_gap_s)
        if response.isError():
            code = getattr(response, "exception_code", "?")
            raise self._failed(device_id, what, f"answered Modbus exception {code}")
        self._recovered(device_id)
        return response

    async def _call(self, call: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        if not self._client.connected and not await self._client.connect():
            raise ConnectionError(f"cannot connect to {_endpoint(self.config)}")
        return await call()

    def _failed(self, device_id: int, what: str, reason: str) -> DeviceError:
        error = DeviceError(self.device_name(device_id), f"{what}: {reason}")
        if device_id in self._failing:
            log.debug("%s still failing: %s", self.device_name(device_id), error.reason)
        else:
            self._failing.add(device_id)
            log.error("Modbus device %s failed: %s", self.device_name(device_id), error.reason)
        return error

    def _recovered(self, device_id: int) -> None:
        if device_id in self._failing:
            self._failing.discard(device_id)
            log.info("Modbus device %s answers again", self.device_name(device_id))


def open_hubs(config: StationConfig) -> dict[str, ModbusHub]:
    """One hub per `[buses.*]` entry of station.toml, keyed by the bus name."""
    return {name: ModbusHub(name, bus) for name, bus in config.buses.items()}


def _make_client(config: BusConfig) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
    if isinstance(config, ModbusTcpBus):
        return AsyncModbusTcpClient(config.host, port=config.port, timeout=config.timeout_s,
                                    retries=TCP_RETRIES, reconnect_delay=0)
    return AsyncModbusSerialClient(config.port, framer=FramerType.RTU, baudrate=config.baudrate,
                                   parity=config.parity, stopbits=config.stopbits, bytesize=8,
                                   timeout=config.timeout_s, retries=RTU_RETRIES, reconnect_delay=0)


def _endpoint(config: BusConfig) -> str:
    return f"{config.host}:{config.port}" if isinstance(config, ModbusTcpBus) else config.port


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.removeprefix("Modbus Error: ")


def _check_count(count: int, limit: int) -> None:
    if not 1 <= count <= limit:
        raise ValueError(f"count must be 1..{limit}, got {count}")
