"""A simulated Incotex Mercury 230/234 on a pseudo-terminal, byte for byte.

The simulator owns the master side of a pty; a symlink at the configured port path points at
the slave (`/dev/pts/N`), so the driver opens it with pyserial as it opens a USB-RS485 adapter
(reference/hardware.md §8). Like a meter on a real line it reads a request until the line is
quiet, ignores a frame with a bad CRC or for another address, answers the test/open/close
commands with status frames, refuses reads outside an open channel (status 5), closes the
channel after `channel_timeout_s` without traffic, and serves voltage, current, power and the
energy counters from a settable `MeterSnapshot`. Faults (`manage.py sim fault`): "crc",
"wrong_device", "garbage" (line noise instead of the reply), "partial_frame" (the reply cut short);
offline = silent.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from workers.drivers import mercury_frames as frames
from workers.drivers.meter import MeterSnapshot
from workers.sim.faults import FaultState, HasFaults
from workers.sim.pty_link import PtyLink, PtyLinkError

log = logging.getLogger(__name__)

REQUEST_SILENCE_S = 0.003  # a request ends when the line is quiet this long
CHANNEL_TIMEOUT_S = 240.0  # ? modelling assumption: the channel closes after 4 min without traffic
USER_PASSWORD = bytes([1] * 6)
ADMIN_PASSWORD = bytes([2] * 6)
FAULT_KINDS = ("crc", "wrong_device", "garbage", "partial_frame")
ENERGY_SINCE_RESET_SUM = bytes([frames.ENERGY_SINCE_RESET, frames.TARIFF_SUM])


class MercuryLinkError(PtyLinkError):
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


class SimulatedMercury(HasFaults):
    """One Mercury meter at `address` alone on its pty line (SimulatedDevice)."""

    def __init__(self, name: str, link: Path, address: int, *, password: bytes = USER_PASSWORD,
                 admin_password: bytes = ADMIN_PASSWORD,
                 channel_timeout_s: float = CHANNEL_TIMEOUT_S) -> None:
        self.name = name
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
        self._line = PtyLink(link, refused=MercuryLinkError)

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
        self._line.open()
        self._line.watch(self._on_bytes)
        log.info("Mercury meter %s (address %d) simulated on %s -> %s", self.name, self.address,
                 self.link, self._line.slave_path)

    def close(self) -> None:
        """Stop answering, remove our link (if still ours) and close the pty."""
        if self._frame_timer is not None:
            self._frame_timer.cancel()
        self._line.close()

    def _on_bytes(self, data: bytes) -> None:
        self._buffer += data
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
        address = (self.address + 1) & 0xFF if faulty("wrong_device") else self.address
        reply = frames.frame(address, body)
        if faulty("crc"):
            reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
        if faulty("partial_frame"):
            reply = reply[:len(reply) // 2]
        if faulty("garbage"):
            reply = bytes([self.address ^ 0x80, 0x00, 0xFF, 0x13, 0x37])
        self._line.write(reply)
