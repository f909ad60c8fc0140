"""A serial port read from asyncio: pyserial in non-blocking mode, woken by `loop.add_reader`.

Used for the card readers (the EM4100 only talks; the PN532 is commanded too). pyserial, OS and
termios errors (a pty whose other end went away raises termios.error, not OSError) become
`DeviceError`; `open_with_backoff` keeps trying while the port is missing (a USB adapter not
plugged in yet, or the simulator not up yet), logging the first failure at ERROR only.
"""

from __future__ import annotations

import asyncio
import logging
import termios
from collections.abc import Awaitable, Callable

import serial

from workers.drivers.errors import DeviceError

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0
READ_CHUNK = 256


class SerialPort:
    def __init__(self, path: str, baudrate: int) -> None:
        self.path = path
        self.baudrate = baudrate
        self._serial: serial.Serial | None = None

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def open(self) -> None:
        """Open the port and drop what was queued before anyone listened (a real line loses it)."""
        try:
            port = serial.Serial(self.path, self.baudrate, timeout=0)
            port.reset_input_buffer()
        except (serial.SerialException, OSError, ValueError, termios.error) as error:
            raise DeviceError(self.path, f"cannot open: {error}") from error
        self._serial = port

    async def open_with_backoff(self, sleep: Callable[[float], Awaitable[bool]]) -> bool:
        """Open, retrying 0.5 s doubling to 10 s; True once open, False if `sleep(seconds)`
        (e.g. `Service.sleep`) returns False because the service is stopping."""
        delay, failing = RETRY_FIRST_S, False
        while True:
            try:
                self.open()
            except DeviceError as error:
                (log.debug if failing else log.error)("%s; retrying", error)
                failing = True
                if not await sleep(delay):
                    return False
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            log.info("serial port %s open at %d baud", self.path, self.baudrate)
            return True

    async def read(self) -> bytes:
        """Wait until bytes arrive and return them; DeviceError when the port goes away."""
        port = self._serial
        if port is None:
            raise DeviceError(self.path, "port is not open")
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = port.fileno()
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        try:
            data = port.read(max(port.in_waiting, READ_CHUNK))  # non-blocking (timeout=0)
        except (serial.SerialException, OSError) as error:
            raise DeviceError(self.path, f"read failed: {error}") from error
        if not data:
            raise DeviceError(self.path, "readable but no data: the device went away")
        return data

    def write(self, data: bytes) -> None:
        port = self._serial
        if port is None:
            raise DeviceError(self.path, "port is not open")
        try:
            port.write(data)
        except (serial.SerialException, OSError) as error:
            raise DeviceError(self.path, f"write failed: {error}") from error

    def discard_input(self) -> None:
        """Drop bytes nobody asked for (a late answer to an aborted command)."""
        if self._serial is not None:
            try:
                self._serial.reset_input_buffer()
            except (serial.SerialException, OSError, termios.error) as error:
                raise DeviceError(self.path, f"flush failed: {error}") from error

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError) as error:
                log.debug("closing %s: %s", self.path, error)
            self._serial = None
