"""A pseudo-terminal whose slave side a driver opens as a serial port, linked at a fixed path.

Every simulated serial device (Mercury meter, USB-CAN adapter, RFID readers) sits on the
master side of a pty; a symlink at the port path station.toml names points at the slave
(`/dev/pts/N`), so the driver opens it with pyserial or python-can exactly as it opens a real
USB-serial adapter (reference/hardware.md §8). The simulator keeps the slave open as well, so
the line stays up while the driver's service restarts.

The link is ours to replace only when it is a symlink (a stale one, left by a simulator that
did not stop cleanly); anything else at that path is refused with `PtyLinkError`. On close the
link is removed only if it still points at our pty, so a newer simulator's link survives.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pty
import tty
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

READ_CHUNK = 4096  # bytes taken from the line per readable event


class PtyLinkError(RuntimeError):
    """The link path cannot be created: something other than a symlink is there."""


def point_link(link: Path, target: str, *, refused: type[PtyLinkError] = PtyLinkError) -> None:
    """Make `link` a symlink to `target`, replacing a stale symlink (a simulator that did not
    stop cleanly) but never a real file: `refused` is raised then."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise refused(f"{link} exists and is not a symlink; not replacing it")
    link.symlink_to(target)


class PtyLink:
    """A raw, non-blocking pty pair with its slave linked at `link`; the device owns the master.

    `refused` is the error raised when the path is taken (a device module's own subclass of
    PtyLinkError, so its callers catch what they always caught).
    """

    def __init__(self, link: Path, *, refused: type[PtyLinkError] = PtyLinkError) -> None:
        self.link = link
        self.slave_path = ""
        self._refused = refused
        self._master: int | None = None
        self._slave: int | None = None
        self._watching: asyncio.AbstractEventLoop | None = None

    def open(self) -> None:
        """Create the pty pair and point the link at its slave (replacing a stale symlink)."""
        master, slave = pty.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave, self.slave_path = master, slave, os.ttyname(slave)
        try:
            point_link(self.link, self.slave_path, refused=self._refused)
        except PtyLinkError:
            self.close()
            raise

    def watch(self, on_bytes: Callable[[bytes], None]) -> None:
        """Call `on_bytes` in the running loop with whatever the driver writes to the line."""
        master = self._require_open()
        self._watching = asyncio.get_running_loop()
        self._watching.add_reader(master, self._read, on_bytes)

    def _read(self, on_bytes: Callable[[bytes], None]) -> None:
        try:
            data = os.read(self._require_open(), READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as error:
            log.warning("%s: read failed: %s", self.link, error)
            return
        on_bytes(data)

    def write(self, data: bytes) -> bool:
        """Put `data` on the line; False when the line is full (nobody has read it for a long
        while), in which case the bytes are dropped, as a real UART would lose them."""
        try:
            os.write(self._require_open(), data)
        except BlockingIOError:
            log.warning("%s: line full (nobody reading); %d bytes dropped", self.link, len(data))
            return False
        return True

    def _require_open(self) -> int:
        if self._master is None:
            raise RuntimeError(f"simulated line {self.link} is not open")
        return self._master

    def close(self) -> None:
        """Stop watching, remove our link (only if it still points at our pty), close the pty."""
        if self._watching is not None and self._master is not None:
            self._watching.remove_reader(self._master)
        self._watching = None
        if self.link.is_symlink() and os.readlink(self.link) == self.slave_path:
            self.link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
