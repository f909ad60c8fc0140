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
import os
import pty
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from workers.drivers.em4100 import REPEAT_PERIOD_S, encode_frame, normalise_uid
from workers.sim.faults import FaultState, SimulatedDevice

log = logging.getLogger(__name__)

SWIPE_HOLD_S = 0.5  # how long `sim swipe` keeps a card on the reader
LINE_NOISE = b"\xff\x13noise\r\n"  # the "garbage" fault: bytes no reader protocol starts with


class RfidLinkError(RuntimeError):
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


class SerialLink:
    """A pty pair with the slave linked at `link`; the simulated device owns the master."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self._master: int | None = None
        self._slave: int | None = None
        self._watching: asyncio.AbstractEventLoop | None = None
        self.slave_path = ""

    def open(self) -> None:
        """Create the pty pair and point the link at its slave (replacing a stale link)."""
        master, slave = pty.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave, self.slave_path = master, slave, os.ttyname(slave)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        if self.link.is_symlink():
            self.link.unlink()
        elif self.link.exists():
            self.close()
            raise RfidLinkError(f"{self.link} exists and is not a symlink; not replacing it")
        self.link.symlink_to(self.slave_path)
        log.info("RFID reader simulated on %s -> %s", self.link, self.slave_path)

    def watch(self, on_bytes: Callable[[bytes], None]) -> None:
        """Call `on_bytes` with whatever the driver writes to the line."""
        master = self._require_open()
        self._watching = asyncio.get_running_loop()
        self._watching.add_reader(master, self._read, on_bytes)

    def _read(self, on_bytes: Callable[[bytes], None]) -> None:
        try:
            data = os.read(self._require_open(), 1024)
        except (BlockingIOError, OSError):
            return
        on_bytes(data)

    def write(self, data: bytes) -> None:
        try:
            os.write(self._require_open(), data)
        except BlockingIOError:
            # nobody has read the line for a long while: a real UART would lose the bytes too
            log.warning("RFID line full (nobody reading %s); %d bytes dropped", self.link, len(data))

    def _require_open(self) -> int:
        if self._master is None:
            raise RuntimeError("simulated reader is not open")
        return self._master

    def close(self) -> None:
        """Remove our link (only if it still points at our pty) and close the pty."""
        if self.link.is_symlink() and os.readlink(self.link) == self.slave_path:
            self.link.unlink()
        if self._watching is not None and self._master is not None:
            self._watching.remove_reader(self._master)
            self._watching = None
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None


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


class SimulatedReader:
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
    def online(self) -> bool:
        return self._faults.online

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

    def set_online(self, online: bool) -> None:
        self._faults.set_online(online)

    def inject_fault(self, kind: str) -> None:
        self._faults.inject_fault(kind)

    def clear_faults(self) -> None:
        self._faults.clear_faults()
