"""A CAN bus reached through python-can (a USB-CAN adapter speaking slcan), for asyncio code.

The station computer has no CAN port: it reaches the power modules through a USB-CAN adapter,
and the simulator presents one as an slcan adapter on a pseudo-terminal, so the same python-can
interface runs in both (reference/hardware.md §3.1). python-can's Bus is blocking, so a reader
thread calls `recv` and hands each frame to the event loop, and sends run in a worker thread
with a write timeout: a stalled adapter cannot freeze the loop.

The link opens in the background with backoff (the adapter not plugged in yet, the simulator
not up yet) and reopens by itself when the adapter goes away; the first failure is logged at
ERROR, repeats at DEBUG until it works again (STYLE habit 7). python-can and serial errors
become `DeviceError`. On open the adapter must answer the slcan `V` (version) command, so a
wrong tty (say, the RFID reader's) is reported as such instead of as silent modules.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import can

from bus.tasks import cancel_and_wait
from workers.drivers.errors import DeviceError

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0
READ_TIMEOUT_S = 0.05  # how long the reader thread blocks in one recv (bounds stop latency)
SEND_TIMEOUT_S = 1.0  # serial write timeout: a stalled adapter fails the send instead of hanging
VERSION_TIMEOUT_S = 1.0

FrameHandler = Callable[[can.Message], None]


@dataclass(frozen=True)
class CanSettings:
    channel: str  # the adapter's tty (a /dev/serial/by-id/... link on a station, a pty in simulation)
    interface: str = "slcan"
    bitrate: int = 125_000
    open_delay_s: float = 2.0  # python-can waits this long after opening the tty (adapters that reset)


class CanLink:
    """One CAN adapter: `start(on_frame)`, `send(...)`, `stop()`. `on_frame` runs in the event loop."""

    def __init__(self, settings: CanSettings) -> None:
        self.settings = settings
        self.name = f"can:{settings.channel}"
        self._bus: can.BusABC | None = None
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.opened = asyncio.Event()  # set while the adapter is open

    @property
    def connected(self) -> bool:
        return self._bus is not None

    def start(self, on_frame: FrameHandler) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(on_frame), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def send(self, arbitration_id: int, data: bytes, *, extended: bool = True) -> None:
        """Transmit one data frame; DeviceError if the adapter is not open or the write fails."""
        bus = self._bus
        if bus is None:
            raise DeviceError(self.name, "CAN adapter is not open")
        message = can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=extended)
        async with self._send_lock:  # one writer at a time: frames never interleave on the tty
            try:
                await asyncio.to_thread(bus.send, message, SEND_TIMEOUT_S)
            except (can.CanError, OSError, ValueError) as error:
                raise DeviceError(self.name, f"send failed: {error}") from error

    async def _run(self, on_frame: FrameHandler) -> None:
        delay, failing = RETRY_FIRST_S, False
        while True:
            try:
                bus = await asyncio.to_thread(self._open_bus)
            except DeviceError as error:
                (log.debug if failing else log.error)("%s; retrying", error)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay, failing = RETRY_FIRST_S, False
            await self._serve(bus, on_frame)

    def _open_bus(self) -> can.BusABC:
        settings = self.settings
        try:
            # the serial read timeout bounds one blocking read; python-can's 1 ms default would
            # wake the reader thread a thousand times a second on an idle bus
            bus = can.Bus(interface=settings.interface, channel=settings.channel,
                          bitrate=settings.bitrate, sleep_after_open=settings.open_delay_s,
                          timeout=READ_TIMEOUT_S)
        except (can.CanError, OSError, ValueError) as error:
            raise DeviceError(self.name, f"cannot open the CAN adapter: {error}") from error
        try:
            hardware, software = bus.get_version(VERSION_TIMEOUT_S)
        except (can.CanError, OSError, ValueError) as error:
            hardware = software = None
            log.debug("%s: version request failed: %s", self.name, error)
        if hardware is None:
            _shutdown(bus, self.name)
            raise DeviceError(self.name, "no slcan adapter answers on this port (no reply to 'V')")
        log.info("CAN adapter %s open at %d bit/s (slcan hardware %s, software %s)",
                 settings.channel, settings.bitrate, hardware, software)
        return bus

    async def _serve(self, bus: can.BusABC, on_frame: FrameHandler) -> None:
        """Deliver frames until the adapter is lost (returns) or the link is stopped (cancelled)."""
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[BaseException] = loop.create_future()
        stop_reading = threading.Event()
        reader = threading.Thread(target=_read_frames, args=(bus, loop, on_frame, lost, stop_reading),
                                  name=f"{self.name} reader", daemon=True)
        self._bus = bus
        self.opened.set()
        reader.start()
        try:
            error = await lost
            log.error("%s: CAN adapter lost (%s); reopening", self.name, error)
        finally:
            self._bus = None
            self.opened.clear()
            stop_reading.set()
            reader.join(READ_TIMEOUT_S * 10)
            _shutdown(bus, self.name)


def _read_frames(bus: can.BusABC, loop: asyncio.AbstractEventLoop, on_frame: FrameHandler,
                 lost: asyncio.Future[BaseException], stop: threading.Event) -> None:
    """The reader thread: frames to `on_frame` in the loop, a dead adapter to `lost`."""
    while not stop.is_set():
        try:
            message = bus.recv(READ_TIMEOUT_S)
        except (ValueError, IndexError) as error:
            # python-can parses each line itself: a garbled line from the adapter lands here
            log.warning("CAN adapter sent a malformed line (%s); skipped", error)
            continue
        except (can.CanError, OSError) as error:
            _post(loop, _resolve, lost, error)
            return
        if message is not None and not _post(loop, on_frame, message):
            return


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: object) -> bool:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: nobody is listening any more
        return False
    return True


def _resolve(lost: asyncio.Future[BaseException], error: BaseException) -> None:
    if not lost.done():
        lost.set_result(error)


def _shutdown(bus: can.BusABC, name: str) -> None:
    try:
        bus.shutdown()
    except (can.CanError, OSError, ValueError) as error:
        log.debug("%s: closing the adapter: %s", name, error)
