"""Simulated card readers: the pty they sit on, a card held on them, and the EM4100 reader.

A reader is a pseudo-terminal whose slave side looks like a serial port: a symlink at
station.toml's `[rfid].port` points at the slave (`/dev/pts/N`), so the rfid service opens it
with pyserial exactly as it opens a real reader's USB-serial adapter (reference/hardware.md §8).
The simulator keeps the slave open too, so the line stays up while the rfid service restarts.

A card is held on the reader, not tapped: `present(uid, hold_s)` puts it in the field,
presenting the same card again while it is there only extends the hold, another card replaces
it, and it leaves after `hold_s` (or on `remove()`). That is what "one read per hold" in the
rfid service is tested against.

The EM4100 (RDM6300 class) reader sends its frame about every `em4100.REPEAT_PERIOD_S` while a
card is in the field. It has no command channel, so there is no beep to record: such readers
beep by themselves on a read. Faults: "garbage" (line noise before each frame),
"bad_checksum" (every frame's checksum wrong); offline = it sends nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from workers.drivers.em4100 import REPEAT_PERIOD_S, encode_frame, normalise_uid
from workers.sim.faults import FaultState, HasFaults, SimulatedDevice
from workers.sim.pty_link import PtyLink, PtyLinkError

log = logging.getLogger(__name__)

SWIPE_HOLD_S = 0.5  # how long `sim swipe` keeps a card on the reader
LINE_NOISE = b"\xff\x13noise\r\n"  # the "garbage" fault: bytes no reader protocol starts with


class RfidLinkError(PtyLinkError):
    """The reader's link path cannot be created (something else is there)."""


class SimulatedCardReader(SimulatedDevice, Protocol):
    """What the simulator needs from either reader (EM4100 here, PN532 in pn532_port)."""

    @property
    def online(self) -> bool: ...

    def open(self) -> None: ...

    def close(self) -> None: ...

    def present(self, uid: str, hold_s: float | None = SWIPE_HOLD_S) -> None:
        """Hold card `uid` on the reader for `hold_s` (None: until removed); ValueError for a
        UID this reader cannot read."""
        ...

    def remove(self) -> None: ...


class SerialLink(PtyLink):
    """A reader's pty line (workers/sim/pty_link.py); an occupied port path is an RfidLinkError."""

    def __init__(self, link: Path) -> None:
        super().__init__(link, refused=RfidLinkError)

    def open(self) -> None:
        super().open()
        log.info("RFID reader simulated on %s -> %s", self.link, self.slave_path)


class HoldTimer:
    """Calls `on_expire` `hold_s` after the last `restart` (never, for None)."""

    def __init__(self, on_expire: Callable[[], None]) -> None:
        self._on_expire = on_expire
        self._handle: asyncio.TimerHandle | None = None

    def restart(self, hold_s: float | None) -> None:
        self.cancel()
        if hold_s is not None:
            self._handle = asyncio.get_running_loop().call_later(hold_s, self._on_expire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class SimulatedReader(HasFaults):
    """The EM4100 ASCII reader: a held card's frame, again and again, on the pty."""

    name = "rfid"
    fault_kinds = ("garbage", "bad_checksum")

    def __init__(self, link: Path) -> None:
        self.link = link
        self._line = SerialLink(link)
        self._faults = FaultState(self.name, self.fault_kinds)
        self._hold = HoldTimer(self.remove)
        self._uid: str | None = None
        self._sender: asyncio.Task[None] | None = None
        self.frames_sent = 0  # for tests: how many frames went on the wire

    @property
    def slave_path(self) -> str:
        return self._line.slave_path

    @property
    def card(self) -> str | None:
        """The card in the field, if any."""
        return self._uid

    def open(self) -> None:
        self._line.open()

    def close(self) -> None:
        self.remove()
        self._line.close()

    def present(self, uid: str, hold_s: float | None = SWIPE_HOLD_S) -> None:
        """FrameError (a ValueError) for an id that is not 10 hex digits."""
        uid = normalise_uid(uid)
        if uid != self._uid:
            self.remove()
            self._uid = uid
            self._sender = asyncio.create_task(self._send_while_held(uid), name="sim.rfid.em4100")
        self._hold.restart(hold_s)

    def remove(self) -> None:
        self._hold.cancel()
        if self._sender is not None:
            self._sender.cancel()
        self._uid = self._sender = None

    async def _send_while_held(self, uid: str) -> None:
        frame = encode_frame(uid)
        while True:
            if self.online:
                self._line.write(self._on_the_wire(frame))
                self.frames_sent += 1
            await asyncio.sleep(REPEAT_PERIOD_S)

    def _on_the_wire(self, frame: bytes) -> bytes:
        if self._faults.has("bad_checksum"):
            checksum = int(frame[-3:-1], 16) ^ 0xFF
            frame = frame[:-3] + f"{checksum:02X}".encode() + frame[-1:]
        return (LINE_NOISE if self._faults.has("garbage") else b"") + frame
