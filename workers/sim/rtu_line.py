"""A simulated RS485 line: pseudo-terminals bridged in asyncio, so a driver cannot tell it from a cable.

The devices' end is one pty pair whose slave a pymodbus `ModbusSerialServer` (RTU framer)
opens; each master's end ("drop") is another pty pair whose slave is linked at a path: the
bus's `port` from station.toml for the station, and `<port>-service` for a technician's tool
(tests read the meters there while the station polls them). The line copies bytes between
the masters (reference/hardware.md §8, two ptys bridged in Python):

- Wire time: each chunk arrives after the time it takes on the wire at the bus's baud rate
  (start bit, 8 data bits, parity, stop bits per byte), one direction at a time as on 2-wire
  RS485. `wire_delay = False` turns that off; `bytes_carried` counts what went over, so a
  benchmark can set a measured cycle next to the wire-time floor of the same bytes.
- Turns: a master that sent a request holds the line until the answer is through (or until
  the bus's timeout); another master's request waits for its turn, so the station and the
  technician's tool never garble each other. Answers go to the master that spoke last, so a
  late answer reaches it when it may already wait for another one, as on a real line.
- Noise: `inject_noise` puts bytes towards the masters, as interference picked up by their
  receivers; late answers enter at the devices' end (`transmit_from_device`).

The line keeps every slave open itself, so a driver closing and reopening its port (or the
server restarting) never hangs up the pty; pyserial flushes what waited when it opens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pty
import tty
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import SimDevice

from workers.common.station_config import ModbusRtuBus
from workers.sim.faults import FaultState
from workers.sim.modbus_answers import DeviceAnswers
from workers.sim.pty_link import PtyLinkError, point_link

log = logging.getLogger(__name__)

READ_CHUNK = 4096
SERVICE_SUFFIX = "-service"
MIN_SILENCE_S = 0.00175  # Modbus over Serial Line V1.02 §2.5.1.1: fixed t3.5 above 19200 baud
SILENCE_CHARS = 3.5
LATE_BY_S = 0.05  # WireFault.LATE_ANSWER: the answer comes this long after the master's timeout


class LineLinkError(PtyLinkError):
    """A drop's link path cannot be created (something else is there)."""


def service_link(port: str | Path) -> Path:
    """The technician's drop of the line whose station drop is linked at `port`."""
    path = Path(port)
    return path.with_name(path.name + SERVICE_SUFFIX)


@dataclass(frozen=True)
class LineTiming:
    baudrate: int
    bits_per_byte: int  # start bit + 8 data bits + parity bit + stop bits

    @classmethod
    def of(cls, bus: ModbusRtuBus) -> LineTiming:
        return cls(bus.baudrate, 1 + 8 + (bus.parity != "N") + bus.stopbits)

    def wire_time_s(self, byte_count: int) -> float:
        """Time `byte_count` bytes take on the wire: the floor of any exchange of them."""
        return byte_count * self.bits_per_byte / self.baudrate

    @property
    def silence_s(self) -> float:
        """The quiet gap that ends an RTU frame (t3.5)."""
        return max(MIN_SILENCE_S, self.wire_time_s(1) * SILENCE_CHARS)


@dataclass(frozen=True)
class _PtyEnd:
    master: int
    slave: int
    path: str

    @classmethod
    def open(cls) -> _PtyEnd:
        master, slave = pty.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        return cls(master, slave, os.ttyname(slave))

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


class RtuLine:
    def __init__(self, links: Sequence[Path], timing: LineTiming, *, answer_wait_s: float) -> None:
        self.links = list(links)
        self.timing = timing
        self.answer_wait_s = answer_wait_s
        self.wire_delay = True
        self.bytes_carried = 0
        self._devices: _PtyEnd | None = None
        self._drops: list[_PtyEnd] = []
        self._holder: _PtyEnd | None = None  # the master whose exchange is on the line
        self._listener: _PtyEnd | None = None  # the master that spoke last: it hears the answers
        self._waiting: deque[tuple[_PtyEnd, bytes]] = deque()
        self._in_flight: deque[tuple[float, int, bytes]] = deque()  # (arrival time, fd, bytes)
        self._busy_until = 0.0
        self._timers: dict[str, asyncio.TimerHandle] = {}

    @property
    def device_port(self) -> str:
        """The serial port the devices' server opens."""
        if self._devices is None:
            raise RuntimeError("the line is not open")
        return self._devices.path

    def open(self) -> None:
        """Create the pty pairs, link each drop at its path and start carrying bytes."""
        loop = asyncio.get_running_loop()
        try:
            self._devices = _PtyEnd.open()
            for link in self.links:
                drop = _PtyEnd.open()
                self._drops.append(drop)
                point_link(link, drop.path, refused=LineLinkError)
        except BaseException:
            self.close()
            raise
        loop.add_reader(self._devices.master, self._from_devices)
        for drop in self._drops:
            loop.add_reader(drop.master, self._from_master, drop)
        log.info("RS485 line at %s (%d baud)", ", ".join(map(str, self.links)), self.timing.baudrate)

    def close(self) -> None:
        """Remove our links (only those still pointing at our ptys) and close the ptys."""
        loop = asyncio.get_running_loop()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for link, drop in zip(self.links, self._drops, strict=False):
            if link.is_symlink() and os.readlink(link) == drop.path:
                link.unlink()
        for end in [self._devices, *self._drops]:
            if end is not None:
                loop.remove_reader(end.master)
                end.close()
        self._devices, self._drops = None, []
        self._holder = self._listener = None
        self._waiting.clear()
        self._in_flight.clear()

    def transmit_from_device(self, frame: bytes) -> None:
        """Bytes a device puts on the line outside the server's turn (a late answer)."""
        if self._devices is not None:
            os.write(self._devices.slave, frame)

    def inject_noise(self, noise: bytes) -> None:
        """Interference: every master's receiver picks up `noise` now."""
        for drop in self._drops:
            self._carry(noise, drop.master)

    # ---- carrying bytes ----------------------------------------------------------------

    def _from_master(self, drop: _PtyEnd) -> None:
        data = _read(drop.master)
        if not data:
            return
        if self._holder not in (None, drop):
            self._waiting.append((drop, data))
            return
        self._hand_over(drop, data)

    def _hand_over(self, drop: _PtyEnd, request: bytes) -> None:
        assert self._devices is not None
        self._holder = self._listener = drop
        arrives = self._carry(request, self._devices.master)
        self._release_at(arrives + self.answer_wait_s)

    def _from_devices(self) -> None:
        assert self._devices is not None
        data = _read(self._devices.master)
        if not data or self._listener is None:
            return
        arrives = self._carry(data, self._listener.master)
        if self._holder is not None:
            self._release_at(arrives + self.timing.silence_s)

    def _release_at(self, when: float) -> None:
        self._schedule("release", when, self._release)

    def _release(self) -> None:
        """The exchange is over: the next waiting master's request goes out (all its bytes)."""
        self._holder = None
        if not self._waiting:
            return
        drop = self._waiting[0][0]
        request = b"".join(data for source, data in self._waiting if source is drop)
        self._waiting = deque(item for item in self._waiting if item[0] is not drop)
        self._hand_over(drop, request)

    def _carry(self, data: bytes, target: int) -> float:
        """Queue `data` for `target`, arriving after its wire time; returns the arrival time."""
        now = asyncio.get_running_loop().time()
        duration = self.timing.wire_time_s(len(data)) if self.wire_delay else 0.0
        self._busy_until = max(now, self._busy_until) + duration
        self.bytes_carried += len(data)
        self._in_flight.append((self._busy_until, target, data))
        if len(self._in_flight) == 1:
            self._deliver()
        return self._busy_until

    def _deliver(self) -> None:
        now = asyncio.get_running_loop().time()
        while self._in_flight and self._in_flight[0][0] <= now:
            _, target, data = self._in_flight.popleft()
            _write(target, data)
        if self._in_flight:
            self._schedule("deliver", self._in_flight[0][0], self._deliver)

    def _schedule(self, name: str, when: float, callback: Callable[[], None]) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        self._timers[name] = asyncio.get_running_loop().call_at(when, callback)


class SimulatedRtuBus:
    """One `modbus_rtu` bus of station.toml: the line, and the devices' server at its far end."""

    def __init__(self, config: ModbusRtuBus, devices: list[SimDevice],
                 switches: dict[int, FaultState]) -> None:
        self.config = config
        self.line = RtuLine([Path(config.port), service_link(config.port)], LineTiming.of(config),
                            answer_wait_s=config.timeout_s)
        self.answers = DeviceAnswers(switches, late_by_s=config.timeout_s + LATE_BY_S,
                                     send_late=self.line.transmit_from_device)
        self.devices = devices
        self.server: ModbusSerialServer | None = None

    async def start(self) -> ModbusSerialServer:
        self.line.open()
        server = ModbusSerialServer(self.devices, framer=FramerType.RTU, port=self.line.device_port,
                                    baudrate=self.config.baudrate, parity=self.config.parity,
                                    stopbits=self.config.stopbits, trace_packet=self.answers.trace_rtu)
        try:
            await server.serve_forever(background=True)
            await asyncio.sleep(0)  # pymodbus sets the opened port up on the next loop turn
        except BaseException:
            self.line.close()
            raise
        self.server = server
        return server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None
        self.line.close()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, READ_CHUNK)
    except (BlockingIOError, InterruptedError):
        return b""


def _write(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except BlockingIOError:
        # nobody has read that end for a long while: a real receiver would lose the bytes too
        log.debug("RS485 line: %d bytes lost (receiver buffer full)", len(data))
