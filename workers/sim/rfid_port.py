"""The simulated EM4100 reader: a pseudo-terminal whose slave side looks like a serial port.

The simulator writes frames to the master; a symlink at station.toml's `[rfid].port`
points at the slave (`/dev/pts/N`), so the rfid service opens it with pyserial exactly as it
opens a real reader's USB-serial adapter (reference/hardware.md §8). The simulator keeps the
slave open too, so the line stays up while the rfid service restarts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pty
import tty
from pathlib import Path

from workers.drivers.em4100 import encode_frame

log = logging.getLogger(__name__)

REPEATS = 3  # a card held in front of an RDM6300-class reader is sent again and again
REPEAT_INTERVAL_S = 0.1


class RfidLinkError(RuntimeError):
    """The reader's link path cannot be created (something else is there)."""


class SimulatedReader:
    def __init__(self, link: Path) -> None:
        self.link = link
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path = ""

    @property
    def slave_path(self) -> str:
        return self._slave_path

    def open(self) -> None:
        """Create the pty pair and point the link at its slave (replacing a stale link)."""
        master, slave = pty.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave, self._slave_path = master, slave, os.ttyname(slave)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        if self.link.is_symlink():
            self.link.unlink()
        elif self.link.exists():
            self.close()
            raise RfidLinkError(f"{self.link} exists and is not a symlink; not replacing it")
        self.link.symlink_to(self._slave_path)
        log.info("RFID reader simulated on %s -> %s", self.link, self._slave_path)

    async def present(self, uid: str) -> None:
        """A card held in front of the reader: its frame, a few times (FrameError on a bad uid)."""
        frame = encode_frame(uid)
        for repeat in range(REPEATS):
            if repeat:
                await asyncio.sleep(REPEAT_INTERVAL_S)
            self._write(frame)

    def _write(self, frame: bytes) -> None:
        if self._master is None:
            raise RuntimeError("simulated reader is not open")
        try:
            os.write(self._master, frame)
        except BlockingIOError:
            # nobody has read the line for a long while: a real UART would lose the bytes too
            log.warning("RFID line full (nobody reading %s); frame dropped", self.link)

    def close(self) -> None:
        """Remove our link (only if it still points at our pty) and close the pty."""
        if self.link.is_symlink() and os.readlink(self.link) == self._slave_path:
            self.link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
