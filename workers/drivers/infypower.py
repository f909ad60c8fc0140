"""Infypower DC power modules on one CAN bus: setpoints, on/off, readback and status for N modules.

A module switches its output off when it hears nothing from the controller for 10 s
(reference/hardware.md §3.2; station.toml `silence_timeout_s`, the simulated modules' lease),
so the driver re-sends every module's on/off state and V/I setpoint every `resend_s` (at most
a third of that, checked by the configuration), and a dead controller leaves the modules off
(safety invariant 4). The public V1.13 protocol has no command to shorten a real module's
10 s; within it, the charge controllers' own leases have already stopped the EV's current.
Setpoints are cached: a module that comes back after an outage gets its setpoint again at
once (reference/hardware.md §3.5).

Each module is polled every `poll_s` for its output (0x03) and status (0x04); its capabilities
(0x0A) are read once after it (re)appears. A poll that fails (no answer in `answer_timeout_s`,
an error code in the answer's id, a bad length, an implausible value) drops the module's
reading at once, so no stale value is shown as fresh, and DeviceStatusPublisher marks the
module unavailable after two failed polls in a row and available again on the first good one.
Wrong frames are logged at ERROR once per module until it answers well again, then at DEBUG.

Owners either `await run()` (errors such as a lost Redis propagate) or `start()`/`stop()`;
however the driver stops, it switches every module off before closing the adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import can

from bus.tasks import run_all
from workers.common.device_status import DeviceHealth, DeviceStatusPublisher
from workers.common.station_config import PowerModulesConfig
from workers.drivers.can_link import CanLink, CanSettings
from workers.drivers.errors import DeviceError
from workers.drivers.infypower_frames import (
    CONTROLLER_ADDRESS,
    PAYLOAD_LEN,
    Capabilities,
    Command,
    ErrorCode,
    FrameId,
    ProtocolError,
    StatusFlag,
    decode_capabilities,
    decode_module_count,
    decode_output,
    decode_status,
    device_name,
    encode_on_off,
    encode_set_output,
    fault_text,
    request_payload,
)

log = logging.getLogger(__name__)

BUS_NAME = "can"


class SetpointError(ValueError):
    """A setpoint the module cannot take (negative, not a number, beyond its capabilities)."""


@dataclass(frozen=True)
class ModuleReading:
    """One module's poll: measured output and status flags."""

    name: str
    address: int
    voltage_v: float
    current_a: float
    status: StatusFlag

    @property
    def fault(self) -> str | None:
        return fault_text(self.status)

    @property
    def output_on(self) -> bool:
        return not self.status & StatusFlag.DC_SIDE_OFF


@dataclass(frozen=True)
class Setpoint:
    on: bool = False
    voltage_mv: int = 0
    current_ma: int = 0


ReadingHandler = Callable[[ModuleReading], Awaitable[None]]


class InfypowerModules:
    """The modules at `addresses` (named pm1..pmN in that order) on one CAN link."""

    def __init__(self, link: CanLink, addresses: Sequence[int], status: DeviceStatusPublisher, *,
                 controller_address: int = CONTROLLER_ADDRESS, poll_s: float = 0.25,
                 answer_timeout_s: float = 0.2, resend_s: float = 1.0,
                 on_reading: ReadingHandler | None = None) -> None:
        self.link = link
        self.names = {address: device_name(position) for position, address in enumerate(addresses)}
        self.controller_address = controller_address
        self.poll_s, self.answer_timeout_s, self.resend_s = poll_s, answer_timeout_s, resend_s
        self._status = status
        self._on_reading = on_reading
        self._setpoints = {address: Setpoint() for address in addresses}  # safe state: off, 0 V, 0 A
        self._readings: dict[int, ModuleReading] = {}
        self._capabilities: dict[int, Capabilities] = {}
        self._pending: dict[tuple[int, int], asyncio.Future[bytes]] = {}
        self._complained: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: PowerModulesConfig, status: DeviceStatusPublisher, *,
                    on_reading: ReadingHandler | None = None) -> InfypowerModules:
        link = CanLink(CanSettings(config.channel, config.interface, config.bitrate, config.open_delay_s))
        return cls(link, config.module_addresses(), status, controller_address=config.controller_address,
                   poll_s=config.poll_s, answer_timeout_s=config.answer_timeout_s,
                   resend_s=config.resend_s, on_reading=on_reading)

    # --- state -------------------------------------------------------------------------

    def reading(self, address: int) -> ModuleReading | None:
        """The last good poll, or None once a poll failed (never a stale value)."""
        return self._readings.get(address)

    def capabilities(self, address: int) -> Capabilities | None:
        return self._capabilities.get(address)

    def health(self, address: int) -> DeviceHealth:
        """The module's availability as published (failed polls in a row, reason, fault)."""
        return self._status.health(self.names[address], bus_name=BUS_NAME)

    def is_available(self, address: int) -> bool:
        health = self.health(address)
        return health.announced and health.available

    def setpoint(self, address: int) -> Setpoint:
        return self._setpoints[address]

    # --- commands ----------------------------------------------------------------------

    async def set_output(self, address: int, voltage_v: float, current_a: float) -> None:
        """Voltage target and current limit of one module; kept and re-sent until changed.
        SetpointError for an impossible value; DeviceError if it cannot be sent now (the
        setpoint is still kept and goes out as soon as the bus works)."""
        voltage_mv, current_ma = self._checked(address, voltage_v, current_a)
        old = self._setpoints[address]
        self._setpoints[address] = Setpoint(old.on, voltage_mv, current_ma)
        await self._send_setpoint(address)

    async def set_on(self, address: int, on: bool) -> None:
        old = self._setpoints[address]
        self._setpoints[address] = Setpoint(on, old.voltage_mv, old.current_ma)
        await self._send_setpoint(address)

    async def switch_all_off(self) -> None:
        """Every module off and to 0 V / 0 A; modules that cannot be reached now are logged."""
        for address in self.names:
            self._setpoints[address] = Setpoint()
            try:
                await self._send_setpoint(address)
            except DeviceError as error:
                log.warning("switching %s off: %s", self.names[address], error)

    async def read_module_count(self, address: int) -> int:
        """How many modules the addressed module reports on its bus (command 0x02)."""
        return decode_module_count(await self._ask(address, Command.MODULE_COUNT))

    def _checked(self, address: int, voltage_v: float, current_a: float) -> tuple[int, int]:
        name = self.names[address]
        for what, value in (("voltage", voltage_v), ("current", current_a)):
            if not math.isfinite(value) or value < 0:
                raise SetpointError(f"{name}: {what} setpoint {value!r} is not a non-negative number")
        caps = self._capabilities.get(address)
        if caps is not None and voltage_v > caps.max_voltage_v:
            raise SetpointError(f"{name}: {voltage_v} V is above the module's {caps.max_voltage_v} V")
        if caps is not None and current_a > caps.max_current_a:
            raise SetpointError(f"{name}: {current_a} A is above the module's {caps.max_current_a} A")
        try:
            encode_set_output(round(voltage_v * 1000), round(current_a * 1000))
        except ProtocolError as error:
            raise SetpointError(f"{name}: {error}") from error
        return round(voltage_v * 1000), round(current_a * 1000)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="infypower")
            self._task.add_done_callback(_log_crash)

    async def stop(self) -> None:
        """Stop polling, switch every module off and close the adapter."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)  # a crash was logged already
            self._task = None

    async def run(self) -> None:
        """Poll and re-send until cancelled; the first error (e.g. from `on_reading` or a lost
        Redis) propagates unchanged. However it ends, every module is switched off."""
        self.link.start(self._on_frame)
        try:
            await run_all(self._poll_forever(), self._resend_forever())
        finally:
            if self.link.connected:
                await self.switch_all_off()
            await self.link.stop()

    async def _poll_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.poll_once()
            await asyncio.sleep(max(0.0, self.poll_s - (loop.time() - started)))

    async def _resend_forever(self) -> None:
        while True:
            for address in self.names:
                try:
                    await self._send_setpoint(address)
                except DeviceError as error:
                    log.debug("re-sending %s's setpoint: %s", self.names[address], error)
            await asyncio.sleep(self.resend_s)

    # --- polling -----------------------------------------------------------------------

    async def poll_once(self) -> None:
        """One poll of every module (concurrently), with its availability and reading published."""
        await asyncio.gather(*(self._poll_module(address) for address in self.names))

    async def _poll_module(self, address: int) -> None:
        name = self.names[address]
        try:
            if address not in self._capabilities:
                self._capabilities[address] = decode_capabilities(
                    await self._ask(address, Command.CAPABILITIES))
            output = decode_output(await self._ask(address, Command.READ_OUTPUT))
            status = decode_status(await self._ask(address, Command.STATUS))
        except (DeviceError, ProtocolError) as error:
            reason = error.reason if isinstance(error, DeviceError) else str(error)
            if isinstance(error, ProtocolError):
                self._complain(address, reason)
            self._readings.pop(address, None)
            await self._status.failed(name, reason, bus_name=BUS_NAME)
            if not self.is_available(address):
                self._capabilities.pop(address, None)  # re-read on return: it may have been swapped
            return
        recovered = not self.is_available(address)
        reading = ModuleReading(name, address, output.voltage_v, output.current_a, status)
        self._readings[address] = reading
        self._complained.discard(address)
        await self._status.succeeded(name, bus_name=BUS_NAME, fault=reading.fault)
        if recovered and self._setpoints[address] != Setpoint():
            log.info("%s answers again; re-applying its setpoint", name)
            with contextlib.suppress(DeviceError):
                await self._send_setpoint(address)
        if self._on_reading is not None:
            await self._on_reading(reading)

    async def _ask(self, address: int, command: Command) -> bytes:
        """Send a read request and wait for its answer's payload; DeviceError on any failure."""
        name, key = self.names[address], (address, int(command))
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            await self._send(address, command, request_payload())
            return await asyncio.wait_for(future, self.answer_timeout_s)
        except TimeoutError:
            raise DeviceError(name, f"no answer to {command.name} within {self.answer_timeout_s} s") from None
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]

    async def _send_setpoint(self, address: int) -> None:
        setpoint = self._setpoints[address]
        set_output = encode_set_output(setpoint.voltage_mv, setpoint.current_ma)
        if setpoint.on:  # the target first, then on: the module never ramps to an old target
            await self._send(address, Command.SET_OUTPUT, set_output)
            await self._send(address, Command.ON_OFF, encode_on_off(True))
        else:
            await self._send(address, Command.ON_OFF, encode_on_off(False))
            await self._send(address, Command.SET_OUTPUT, set_output)

    async def _send(self, address: int, command: Command, data: bytes) -> None:
        frame_id = FrameId(command, destination=address, source=self.controller_address)
        await self.link.send(frame_id.encode(), data)

    # --- receiving ---------------------------------------------------------------------

    def _on_frame(self, message: can.Message) -> None:
        """Route an answer to the request waiting for it; log what does not fit the protocol."""
        if not message.is_extended_id or message.is_remote_frame or message.is_error_frame:
            log.debug("ignoring CAN frame %s (not an extended data frame)", message)
            return
        try:
            frame_id = FrameId.decode(message.arbitration_id)
        except ProtocolError as error:
            log.debug("ignoring CAN frame: %s", error)
            return
        if frame_id.destination != self.controller_address:
            return  # traffic for another controller
        address = frame_id.source
        if address not in self.names:
            log.warning("answer from module address 0x%02X, which station.toml does not list", address)
            return
        problem = self._problem(frame_id, bytes(message.data))
        future = self._pending.get((address, frame_id.command))
        if problem is not None:
            self._complain(address, problem)
            if future is not None and not future.done():
                future.set_exception(DeviceError(self.names[address], problem))
        elif future is not None and not future.done():
            future.set_result(bytes(message.data))
        else:
            log.debug("%s: answer to command 0x%02X (acknowledgement or late)",
                      self.names[address], frame_id.command)

    @staticmethod
    def _problem(frame_id: FrameId, data: bytes) -> str | None:
        if frame_id.command not in Command._value2member_map_:
            return f"answered with unknown command 0x{frame_id.command:02X}"
        command = Command(frame_id.command).name
        if frame_id.error != ErrorCode.NORMAL:
            known = ErrorCode._value2member_map_.get(frame_id.error)
            label = known.name if isinstance(known, ErrorCode) else "unknown"
            return f"refused {command}: error code 0x{frame_id.error:X} ({label})"
        if len(data) != PAYLOAD_LEN:
            return f"answered {command} with {len(data)} bytes instead of {PAYLOAD_LEN}"
        return None

    def _complain(self, address: int, problem: str) -> None:
        first = address not in self._complained
        self._complained.add(address)
        (log.error if first else log.debug)("%s: %s", self.names[address], problem)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("power-module driver stopped: %r", task.exception())
