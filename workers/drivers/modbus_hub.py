"""One hub per physical Modbus bus (STYLE habit 7, after Home Assistant's modbus hub).

Every device on a bus (meters, controllers, the IO module) shares one hub, so one
transaction is on the wire at a time: an asyncio lock wraps each one, and on RS485 a
quiet gap (`inter_frame_delay_s`) follows it. A failure is logged at ERROR the first time
per device and at DEBUG while it lasts, then once at INFO on recovery, so a dead meter does
not flood the error log. Whatever pymodbus or the OS raises becomes `DeviceError` here, the
one place library errors are translated.

RTU has no transaction id: pymodbus 3.16.1 sends 0, skips frames from other device ids and
takes any frame from the asked one, so an answer to an earlier request of the same device
could pass for the current one. The hub therefore:
- drops whatever waits on the port before it sends (late answers, line noise; pymodbus
  clears its own buffer on send, the hub empties the kernel's);
- after a failed exchange keeps the line quiet for `late_answer_window_s`, so a late
  answer lands while nobody waits and is discarded (and named in the error);
- checks every answer against its request (function, register count, written address), so
  a late answer to another request is refused, never decoded as this one;
- asks again (`retries`) only after an unusable answer (the device is alive, the wire
  garbled it); a silent device is not retried, so it cannot hold the line: the next poll asks.
pymodbus reports every unusable answer as "no response"; the bytes it was given (its
`trace_packet` hook) tell a CRC error from a partial frame, noise or another device.

The hub connects lazily and reconnects on the next transaction after the link broke
(pymodbus' own background reconnect is off: the pollers' cadence is the retry).
"""

from __future__ import annotations

import asyncio
import logging
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.framer import FramerRTU
from pymodbus.pdu import ModbusPDU
from serial import SerialException

from workers.common.station_config import BusConfig, ModbusRtuBus, ModbusTcpBus, StationConfig
from workers.drivers.errors import DeviceError
from workers.drivers.registers import FunctionCode

log = logging.getLogger(__name__)

TCP_RETRIES = 0  # TCP delivers or fails; a missing answer means the device is gone
MAX_READ_REGISTERS = 125  # Modbus limit per read request (Application Protocol §6.3)
MAX_READ_BITS = 2000
WRITE_COIL, WRITE_COILS, WRITE_REGISTERS = 5, 15, 16
EXCEPTION_BIT = 0x80
RTU_CRC_BYTES = 2
SHOWN_BYTES = 8  # how much of an unusable answer an error message quotes

_READS: dict[FunctionCode, str] = {
    FunctionCode.READ_COILS: "read_coils",
    FunctionCode.READ_DISCRETE_INPUTS: "read_discrete_inputs",
    FunctionCode.READ_HOLDING_REGISTERS: "read_holding_registers",
    FunctionCode.READ_INPUT_REGISTERS: "read_input_registers",
}
_BIT_READS = frozenset({FunctionCode.READ_COILS, FunctionCode.READ_DISCRETE_INPUTS})


def _quiet_library_logging() -> None:
    """pymodbus logs every missing answer at ERROR itself; the hub logs failures (once per
    outage, with the device's name), so the library's own lines would only flood error.log."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class _Request:
    device_id: int
    function_code: int
    address: int
    count: int

    def __str__(self) -> str:
        span = f"+{self.count}" if self.function_code in _READS else ""
        return f"FC{self.function_code:02d} @{self.address}{span}"


@dataclass(frozen=True)
class _Failure:
    reason: str
    retry: bool  # the device answered, unusably: asking again at once is worth it


class _Receiver:
    """The bytes that reached the serial port during one exchange. pymodbus hands its trace
    hook the whole receive buffer on each arrival, so a buffer that extends the last one
    replaces it."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def trace(self, sending: bool, data: bytes) -> bytes:
        if not sending and data:
            if self._parts and data.startswith(self._parts[-1]):
                self._parts[-1] = data
            else:
                self._parts.append(data)
        return data

    def clear(self) -> None:
        self._parts.clear()

    @property
    def heard(self) -> bytes:
        return b"".join(self._parts)


class ModbusHub:
    """Serialised access to the devices of one bus (`[buses.<name>]` in station.toml)."""

    def __init__(self, name: str, config: BusConfig) -> None:
        _quiet_library_logging()
        self.name = name
        self.config = config
        self._receiver = _Receiver()
        self._client = _make_client(config, self._receiver)
        self._lock = asyncio.Lock()
        self._rtu = config if isinstance(config, ModbusRtuBus) else None
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
        response = await self._read(_Request(device_id, table, address, count))
        return list(response.registers)

    async def read_bits(self, device_id: int, table: FunctionCode, address: int, count: int) -> list[bool]:
        """Read `count` coils (FC01) or discrete inputs (FC02) from `address` (0-based)."""
        if table not in _BIT_READS:
            raise ValueError(f"{table!r} does not read bits")
        _check_count(count, MAX_READ_BITS)
        response = await self._read(_Request(device_id, table, address, count))
        return [bool(bit) for bit in response.bits[:count]]

    async def write_coil(self, device_id: int, address: int, value: bool) -> None:
        """Write one coil (FC05)."""
        await self._transact(_Request(device_id, WRITE_COIL, address, 1),
                             lambda: self._client.write_coil(address, value, device_id=device_id))

    async def write_coils(self, device_id: int, address: int, values: list[bool]) -> None:
        """Write consecutive coils (FC15) in one request: a safe state reaches every output in
        one exchange, and a silent module costs one timeout, not one per coil."""
        if not values:
            raise ValueError("write_coils needs at least one value")
        await self._transact(_Request(device_id, WRITE_COILS, address, len(values)),
                             lambda: self._client.write_coils(address, values, device_id=device_id))

    async def write_registers(self, device_id: int, address: int, values: list[int]) -> None:
        """Write holding registers (FC16), in one request so the device sees them together."""
        if not values or any(not 0 <= value <= 0xFFFF for value in values):
            raise ValueError(f"register values must be a non-empty list of 0..65535, got {values}")
        await self._transact(_Request(device_id, WRITE_REGISTERS, address, len(values)),
                             lambda: self._client.write_registers(address, values, device_id=device_id))

    async def close(self) -> None:
        async with self._lock:
            self._client.close()

    async def _read(self, request: _Request) -> ModbusPDU:
        method = getattr(self._client, _READS[FunctionCode(request.function_code)])
        return await self._transact(request, lambda: method(request.address, count=request.count,
                                                            device_id=request.device_id))

    async def _transact(self, request: _Request, call: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        async with self._lock:
            try:
                outcome = await self._exchange(request, call)
            finally:
                if self._rtu is not None and self._rtu.inter_frame_delay_s:
                    await asyncio.sleep(self._rtu.inter_frame_delay_s)
        if isinstance(outcome, _Failure):
            raise self._failed(request, outcome.reason)
        self._recovered(request.device_id)
        return outcome

    async def _exchange(self, request: _Request,
                        call: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU | _Failure:
        """One request, asked again after an unusable answer as often as the bus allows."""
        retries = self._rtu.retries if self._rtu is not None else TCP_RETRIES
        for _ in range(retries):
            outcome = await self._attempt(request, call)
            if not isinstance(outcome, _Failure) or not outcome.retry:
                return outcome
            log.debug("%s %s: %s; asking again", self.device_name(request.device_id), request, outcome.reason)
        return await self._attempt(request, call)

    async def _attempt(self, request: _Request,
                       call: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU | _Failure:
        self._discard_stale_input()
        try:
            response = await self._call(call)
        except (ModbusException, OSError, TimeoutError) as error:
            if not self._client.connected:
                self._client.close()
            return await self._unanswered(request, error)
        mismatch = _mismatch(request, response)
        if mismatch is not None:
            await self._let_line_settle()
            return _Failure(mismatch, retry=True)
        if response.isError():
            code = getattr(response, "exception_code", "?")
            return _Failure(f"answered Modbus exception {code}", retry=False)
        return response

    async def _call(self, call: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        if not self._client.connected and not await self._client.connect():
            raise ConnectionError(f"cannot connect to {_endpoint(self.config)}")
        return await call()

    async def _unanswered(self, request: _Request, error: BaseException) -> _Failure:
        """Why no usable answer came: on RTU, from the bytes that did arrive."""
        if self._rtu is None or not self._client.connected:
            return _Failure(_describe(error), retry=False)
        heard = self._receiver.heard
        await self._let_line_settle()
        if heard:
            return _Failure(unusable_answer(heard, request.device_id), retry=True)
        if self._receiver.heard:
            return _Failure(f"answered after the {self._rtu.timeout_s:g} s timeout "
                            "(the late answer was discarded)", retry=False)
        return _Failure(f"no answer within {self._rtu.timeout_s:g} s", retry=False)

    def _discard_stale_input(self) -> None:
        """Bytes waiting on the port before a request are never its answer: drop them."""
        self._receiver.clear()
        port = getattr(getattr(self._client.ctx, "transport", None), "sync_serial", None)
        if self._rtu is None or port is None:
            return
        try:
            port.reset_input_buffer()
        except (OSError, termios.error, SerialException):
            self._client.close()  # the port hung up (e.g. its pty was replaced): reopen it

    async def _let_line_settle(self) -> None:
        if self._rtu is not None and self._rtu.late_answer_window_s:
            await asyncio.sleep(self._rtu.late_answer_window_s)

    def _failed(self, request: _Request, reason: str) -> DeviceError:
        error = DeviceError(self.device_name(request.device_id), f"{request}: {reason}")
        if request.device_id in self._failing:
            log.debug("%s still failing: %s", error.device, error.reason)
        else:
            self._failing.add(request.device_id)
            log.error("Modbus device %s failed: %s", error.device, error.reason)
        return error

    def _recovered(self, device_id: int) -> None:
        if device_id in self._failing:
            self._failing.discard(device_id)
            log.info("Modbus device %s answers again", self.device_name(device_id))


def open_hubs(config: StationConfig) -> dict[str, ModbusHub]:
    """One hub per Modbus `[buses.*]` entry of station.toml, keyed by the bus name (Mercury
    lines speak their own protocol: workers.drivers.meter_factory opens them)."""
    return {name: ModbusHub(name, bus) for name, bus in config.buses.items()
            if isinstance(bus, ModbusTcpBus | ModbusRtuBus)}


def unusable_answer(heard: bytes, device_id: int) -> str:
    """Name what arrived instead of an answer from `device_id` (RTU bytes pymodbus refused)."""
    expected = _rtu_answer_length(heard)
    complete = expected is not None and len(heard) >= expected
    if complete and _crc_ok(heard[:expected]):
        if heard[0] != device_id:
            return f"the answer came from device id {heard[0]}"
        return f"unexpected answer {_show(heard)}"
    if heard[0] != device_id or expected is None:
        return f"garbage on the line: {len(heard)} bytes ({_show(heard)})"
    if not complete:
        return f"partial frame: {len(heard)} of {expected} bytes ({_show(heard)})"
    return f"CRC error in the answer ({_show(heard)})"


def _rtu_answer_length(frame: bytes) -> int | None:
    """Length of the RTU answer starting at frame[0], from its function code (None: unknown)."""
    if len(frame) < 2:
        return None
    function_code = frame[1]
    if function_code & EXCEPTION_BIT:
        return 5
    if function_code in _READS:
        return 5 + frame[2] if len(frame) >= 3 else None
    if function_code in (WRITE_COIL, WRITE_COILS, WRITE_REGISTERS):
        return 8
    return None


def _crc_ok(frame: bytes) -> bool:
    body, crc = frame[:-RTU_CRC_BYTES], frame[-RTU_CRC_BYTES:]
    return FramerRTU.compute_CRC(body) == int.from_bytes(crc, "big")


def _show(data: bytes) -> str:
    shown = data[:SHOWN_BYTES].hex(" ")
    return shown + (" ..." if len(data) > SHOWN_BYTES else "")


def _mismatch(request: _Request, response: ModbusPDU) -> str | None:
    """Why `response` cannot be the answer to `request` (None: it can)."""
    function_code = response.function_code & ~EXCEPTION_BIT
    if function_code != request.function_code:
        return f"answer to another request (function {function_code:02d})"
    if response.isError():
        return None
    if request.function_code in _BIT_READS:
        padded = (request.count + 7) // 8 * 8
        if len(response.bits) != padded:
            return f"answer carries {len(response.bits)} bits, asked for {request.count}"
    elif request.function_code in _READS:
        if len(response.registers) != request.count:
            return f"answer carries {len(response.registers)} registers, asked for {request.count}"
    elif response.address != request.address:
        return f"answer confirms address {response.address}, not {request.address}"
    elif request.function_code in (WRITE_COILS, WRITE_REGISTERS) and response.count != request.count:
        return f"answer confirms {response.count} values written, not {request.count}"
    return None


def _make_client(config: BusConfig, receiver: _Receiver) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
    if isinstance(config, ModbusTcpBus):
        return AsyncModbusTcpClient(config.host, port=config.port, timeout=config.timeout_s,
                                    retries=TCP_RETRIES, reconnect_delay=0)
    return AsyncModbusSerialClient(config.port, framer=FramerType.RTU, baudrate=config.baudrate,
                                   parity=config.parity, stopbits=config.stopbits, bytesize=8,
                                   timeout=config.timeout_s, retries=0, reconnect_delay=0,
                                   trace_packet=receiver.trace)


def _endpoint(config: BusConfig) -> str:
    return f"{config.host}:{config.port}" if isinstance(config, ModbusTcpBus) else config.port


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.removeprefix("Modbus Error: ")


def _check_count(count: int, limit: int) -> None:
    if not 1 <= count <= limit:
        raise ValueError(f"count must be 1..{limit}, got {count}")
