"""A simulated Incotex Mercury 230/234 on a pseudo-terminal, byte for byte.

The simulator owns the master side of a pty; a symlink at the configured port path points at
the slave (`/dev/pts/N`), so the driver opens it with pyserial as it opens a USB-RS485 adapter
(reference/hardware.md §8). Like a meter on a real line it reads a request until the line is
quiet, ignores a frame with a bad CRC or for another address, answers the test/open/close
commands with status frames, refuses reads outside an open channel (status 5), closes the
channel after `channel_timeout_s` without traffic, and serves voltage, current, power and the
energy counters from a settable `MeterSnapshot`. Faults (`manage.py sim fault`): "bad_crc",
"wrong_address", "garbage" (line noise instead of the reply), "partial" (the reply cut short);
offline = silent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pty
import tty
from pathlib import Path

from workers.drivers import mercury_frames as frames
from workers.drivers.meter import MeterSnapshot
from workers.sim.faults import FaultState

log = logging.getLogger(__name__)

REQUEST_SILENCE_S = 0.003  # a request ends when the line is quiet this long
CHANNEL_TIMEOUT_S = 240.0  # ? modelling assumption: the channel closes after 4 min without traffic
USER_PASSWORD = bytes([1] * 6)
ADMIN_PASSWORD = bytes([2] * 6)
FAULT_KINDS = ("bad_crc", "wrong_address", "garbage", "partial")
READ_CHUNK = 256
ENERGY_SINCE_RESET_SUM = bytes([frames.ENERGY_SINCE_RESET, frames.TARIFF_SUM])


class MercuryLinkError(RuntimeError):
    """The meter's link path cannot be created (something else is there)."""


def reply_data(snapshot: MeterSnapshot) -> dict[frames.Bwri | None, bytes]:
    """The data bytes of each read reply for `snapshot` (None: the energy counters since reset).
    ValueError when a value does not fit Mercury's 3- or 4-byte fields."""
    volts = (snapshot.voltage_v, snapshot.voltage_l2_v, snapshot.voltage_l3_v)
    amps = (snapshot.current_a, snapshot.current_l2_a, snapshot.current_l3_a)
    watts = (snapshot.power_w, snapshot.power_l1_w, snapshot.power_l2_w, snapshot.power_l3_w)
    counters = (snapshot.energy_wh, snapshot.energy_export_wh or 0.0, 0.0, 0.0)
    return {
        frames.Bwri.VOLTAGE: b"".join(frames.encode_three(round((v or 0.0) * 100)) for v in volts),
        frames.Bwri.CURRENT: b"".join(frames.encode_three(round((a or 0.0) * 1000)) for a in amps),
        frames.Bwri.POWER: b"".join(frames.encode_three(round((w or 0.0) * 100)) for w in watts),
        None: b"".join(frames.encode_four(round(wh)) for wh in counters),
    }


class SimulatedMercury:
    """One Mercury meter at `address` alone on its pty line (SimulatedDevice)."""

    def __init__(self, name: str, link: Path, address: int, *, password: bytes = USER_PASSWORD,
                 admin_password: bytes = ADMIN_PASSWORD,
                 channel_timeout_s: float = CHANNEL_TIMEOUT_S) -> None:
        self.name = name
        self.fault_kinds = FAULT_KINDS
        self.link = link
        self.address = address
        self.passwords: dict[int, bytes] = {frames.AccessLevel.USER: password,
                                            frames.AccessLevel.ADMIN: admin_password}
        self.channel_timeout_s = channel_timeout_s
        self.opens = 0  # channels opened, for tests and `sim list`
        self._faults = FaultState(name, FAULT_KINDS)
        self._data = reply_data(MeterSnapshot(energy_wh=0.0, power_w=0.0))
        self._channel_until: float | None = None
        self._buffer = bytearray()
        self._frame_timer: asyncio.TimerHandle | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path = ""

    # ---- SimulatedDevice ------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self._faults.online

    def set_online(self, online: bool) -> None:
        self._faults.set_online(online)

    def inject_fault(self, kind: str) -> None:
        self._faults.inject_fault(kind)

    def clear_faults(self) -> None:
        self._faults.clear_faults()

    # ---- the model ----------------------------------------------------------------------

    def set_reading(self, snapshot: MeterSnapshot) -> None:
        """What the meter measures from now on (ValueError if Mercury cannot show it)."""
        self._data = reply_data(snapshot)

    @property
    def channel_open(self) -> bool:
        return self._channel_until is not None and asyncio.get_running_loop().time() < self._channel_until

    # ---- the line -----------------------------------------------------------------------

    def open(self) -> None:
        """Create the pty, point the link at its slave and start answering (in the running loop)."""
        master, slave = pty.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave, self._slave_path = master, slave, os.ttyname(slave)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        if self.link.is_symlink():
            self.link.unlink()
        elif self.link.exists():
            self.close()
            raise MercuryLinkError(f"{self.link} exists and is not a symlink; not replacing it")
        self.link.symlink_to(self._slave_path)
        asyncio.get_running_loop().add_reader(master, self._on_readable)
        log.info("Mercury meter %s (address %d) simulated on %s -> %s", self.name, self.address,
                 self.link, self._slave_path)

    def close(self) -> None:
        """Stop answering, remove our link (if still ours) and close the pty."""
        if self._frame_timer is not None:
            self._frame_timer.cancel()
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
        if self.link.is_symlink() and os.readlink(self.link) == self._slave_path:
            self.link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def _on_readable(self) -> None:
        assert self._master is not None
        try:
            self._buffer += os.read(self._master, READ_CHUNK)
        except OSError:  # the driver side closed: nothing to read until it opens again
            return
        if self._frame_timer is not None:
            self._frame_timer.cancel()
        self._frame_timer = asyncio.get_running_loop().call_later(REQUEST_SILENCE_S, self._on_request)

    def _on_request(self) -> None:
        request, self._buffer = bytes(self._buffer), bytearray()
        if not self.online or not frames.crc_ok(request) or request[0] not in (0, self.address):
            return  # a real meter stays silent: not powered, a corrupted frame, another meter's
        self._send(self._answer(request[1], request[2:-frames.CRC_LEN]))

    def _answer(self, command: int, body: bytes) -> bytes:
        """The reply's bytes after the address: a status byte or the data."""
        loop = asyncio.get_running_loop()
        if command == frames.Command.TEST:
            return bytes([frames.Status.OK])
        if command == frames.Command.OPEN:
            return bytes([self._open_channel(body, loop.time())])
        if command == frames.Command.CLOSE:
            self._channel_until = None
            return bytes([frames.Status.OK])
        if not self.channel_open:
            self._channel_until = None
            return bytes([frames.Status.CHANNEL_CLOSED])
        self._channel_until = loop.time() + self.channel_timeout_s
        return self._read(command, body)

    def _open_channel(self, body: bytes, now: float) -> int:
        level, password = (body[0], body[1:]) if body else (0, b"")
        if self.passwords.get(level) != password:
            return frames.Status.INVALID
        self._channel_until = now + self.channel_timeout_s
        self.opens += 1
        return frames.Status.OK

    def _read(self, command: int, body: bytes) -> bytes:
        if command == frames.Command.READ_PARAMETER and body[:1] == bytes([frames.READ_ALL_PHASES]):
            bwri = next((b for b in frames.Bwri if body[1:] == bytes([b])), None)
            if bwri is not None:
                return self._data[bwri]
        if command == frames.Command.READ_ENERGY and body == ENERGY_SINCE_RESET_SUM:
            return self._data[None]
        return bytes([frames.Status.INVALID])  # not modelled: what a meter says to an unknown request

    def _send(self, body: bytes) -> None:
        faulty = self._faults.has
        address = (self.address + 1) & 0xFF if faulty("wrong_address") else self.address
        reply = frames.frame(address, body)
        if faulty("bad_crc"):
            reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
        if faulty("partial"):
            reply = reply[:len(reply) // 2]
        if faulty("garbage"):
            reply = bytes([self.address ^ 0x80, 0x00, 0xFF, 0x13, 0x37])
        assert self._master is not None
        try:
            os.write(self._master, reply)
        except BlockingIOError:
            log.warning("Mercury line %s full (nobody reading); reply dropped", self.link)
