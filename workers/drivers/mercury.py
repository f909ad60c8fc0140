"""Incotex Mercury 230/234 meters on their own serial protocol -> the same MeterSnapshot.

A Mercury meter answers only inside an open channel: `open` (access level 1 = user, a 6-byte
password) first, then reads; the meter closes the channel by itself after a while without
traffic and then answers status 5, so the driver opens it again and repeats the read once.
A poll reads voltage, current and active power per phase (command 0x08 0x16) and the energy
counters since reset (command 0x05): four exchanges of 6 request bytes and 12..19 reply bytes.

`MercuryLine` is one serial port (one RS485 line, possibly several meters): pyserial in
non-blocking mode woken by `loop.add_reader` (reference/hardware.md §8), one exchange at a time
under a lock, a quiet gap after each (≈5 ms at 9600 baud). A reply ends when it is complete or
the line stays silent; anything wrong with it (no answer within the timeout, a CRC error,
another address answering, a partial frame, noise) is a `DeviceError` saying which, so a bad
reply is never decoded into a reading.
"""

from __future__ import annotations

import asyncio
import logging
import termios

import serial

from workers.drivers import mercury_frames as frames
from workers.drivers.errors import DeviceError
from workers.drivers.meter import MeterSnapshot

log = logging.getLogger(__name__)

MIN_TIMEOUT_S = 0.15  # Mercury documentation: at least 150 ms at 9600..38400 baud
FRAME_SILENCE_S = 0.03  # a gap this long ends a reply (USB adapters deliver in ~16 ms chunks)
GAP_BYTES = 6  # quiet time after an exchange, in byte times (≈5 ms at 9600 baud)
BITS_PER_BYTE = 10  # 8N1
DEFAULT_PASSWORD = bytes([1] * frames.PASSWORD_LEN)  # the factory level-1 password "111111"
ENERGY_COUNTERS = 4  # A+, A-, R+, R-


class ChannelClosed(DeviceError):
    """The meter answered status 5: its channel expired (or was never opened)."""


def parse_password(text: str | None) -> bytes:
    """station.toml's password: 6 digits (one byte each, "111111" = 01 01 01 01 01 01) or
    12 hex digits; None is the factory level-1 password."""
    if text is None:
        return DEFAULT_PASSWORD
    if len(text) == frames.PASSWORD_LEN and text.isdigit():
        return bytes(int(digit) for digit in text)
    if len(text) == 2 * frames.PASSWORD_LEN:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    raise ValueError(f"a Mercury password is 6 digits or 12 hex digits, got {len(text)} characters")


class MercuryLine:
    """One serial port with Mercury meters: serialised exchanges of request and reply bytes."""

    def __init__(self, name: str, port: str, *, baudrate: int = 9600,
                 timeout_s: float = MIN_TIMEOUT_S) -> None:
        if timeout_s < MIN_TIMEOUT_S:
            raise ValueError(f"a Mercury answer may take {MIN_TIMEOUT_S} s; "
                             f"timeout {timeout_s} s is too short")
        self.name = name
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.gap_s = GAP_BYTES * BITS_PER_BYTE / baudrate
        self._serial: serial.Serial | None = None
        self._lock = asyncio.Lock()

    async def exchange(self, device: str, request: bytes, reply_len: int) -> bytes:
        """Send `request`, return the reply bytes as received (up to `reply_len`; fewer when the
        line went silent). DeviceError if the port cannot be used."""
        async with self._lock:
            port = self._open(device)
            try:
                port.reset_input_buffer()  # a late answer to an earlier request is not this reply
                port.write(request)
                return await self._receive(device, port, reply_len)
            except (serial.SerialException, OSError, termios.error) as error:  # termios: not an OSError
                self.close()
                raise DeviceError(device, f"serial port {self.port} failed: {error}") from error
            finally:
                await asyncio.sleep(self.gap_s)

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError) as error:
                log.debug("closing %s: %s", self.port, error)
            self._serial = None

    def _open(self, device: str) -> serial.Serial:
        if self._serial is None:
            try:
                self._serial = serial.Serial(self.port, self.baudrate, timeout=0)
            except (serial.SerialException, OSError, ValueError, termios.error) as error:
                raise DeviceError(device, f"cannot open serial port {self.port}: {error}") from error
        return self._serial

    async def _receive(self, device: str, port: serial.Serial, reply_len: int) -> bytes:
        received = bytearray()
        wait_s = self.timeout_s
        while len(received) < reply_len and await _readable(port.fileno(), wait_s):
            chunk = port.read(reply_len - len(received))
            if not chunk:
                self.close()
                raise DeviceError(device, f"serial port {self.port} went away")
            received += chunk
            wait_s = FRAME_SILENCE_S
        return bytes(received)


async def _readable(fd: int, timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, timeout_s)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


class MercuryMeter:
    """One Mercury 230/234 at `address` on a line; `poll()` as every meter driver has."""

    def __init__(self, line: MercuryLine, address: int, *, password: bytes = DEFAULT_PASSWORD,
                 level: frames.AccessLevel = frames.AccessLevel.USER) -> None:
        if not 0 <= address <= 0xFF:
            raise ValueError(f"a Mercury address is 0..255, got {address}")
        self.line = line
        self.address = address
        self.password = password
        self.level = level
        self.device = f"{line.name}/{address}"
        self._channel_open = False

    async def poll(self) -> MeterSnapshot:
        """Open the channel if needed and read everything; any failure is a DeviceError."""
        try:
            return await self._read_all()
        except ChannelClosed:
            log.debug("%s: channel expired; opening it again", self.device)
            return await self._read_all()

    async def _read_all(self) -> MeterSnapshot:
        try:
            if not self._channel_open:
                await self._open_channel()
            volts = [v / 100 for v in await self._values(frames.Bwri.VOLTAGE)]
            amps = [v / 1000 for v in await self._values(frames.Bwri.CURRENT)]
            total_w, *phases_w = [v / 100 for v in await self._values(frames.Bwri.POWER, signed=True)]
            energy = await self._data(frames.energy_request(self.address), 4 * ENERGY_COUNTERS)
            import_wh, export_wh, _, _ = frames.decode_fours(energy, ENERGY_COUNTERS)  # Wh (0.001 kWh)
        except DeviceError:
            self._channel_open = False
            raise
        return MeterSnapshot(
            energy_wh=float(import_wh), power_w=total_w, voltage_v=volts[0], current_a=amps[0],
            energy_export_wh=float(export_wh), power_l1_w=phases_w[0], power_l2_w=phases_w[1],
            power_l3_w=phases_w[2], voltage_l2_v=volts[1], voltage_l3_v=volts[2],
            current_l2_a=amps[1], current_l3_a=amps[2])

    async def _open_channel(self) -> None:
        reply = await self._reply(frames.open_request(self.address, self.level, self.password), None)
        if reply.status != frames.Status.OK:
            refused_password = reply.status in (frames.Status.INVALID, frames.Status.ACCESS_DENIED)
            hint = " (wrong password?)" if refused_password else ""
            raise DeviceError(self.device, f"opening the channel at level {int(self.level)} refused: "
                                           f"{frames.status_text(reply.status or 0)}{hint}")
        self._channel_open = True

    async def _values(self, bwri: frames.Bwri, *, signed: bool = False) -> list[int]:
        data = await self._data(frames.parameter_request(self.address, bwri), 3 * bwri.values)
        return frames.decode_threes(data, bwri.values, signed=signed)

    async def _data(self, request: bytes, data_len: int) -> bytes:
        reply = await self._reply(request, data_len)
        if reply.status == frames.Status.CHANNEL_CLOSED:
            raise ChannelClosed(self.device, "channel not open (expired)")
        if reply.status is not None:
            raise DeviceError(self.device, f"command {request[1]:#04x} answered status {reply.status} "
                                           f"({frames.status_text(reply.status)}) instead of data")
        return reply.data

    async def _reply(self, request: bytes, data_len: int | None) -> frames.Reply:
        expected = frames.reply_length(data_len) if data_len is not None else frames.STATUS_FRAME_LEN
        raw = await self.line.exchange(self.device, request, expected)
        try:
            return frames.parse_reply(raw, self.address, data_len)
        except frames.FrameError as error:
            reason = f"no answer within {self.line.timeout_s * 1000:.0f} ms" if not raw else str(error)
            raise DeviceError(self.device, reason) from error
