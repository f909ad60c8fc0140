"""A simulated USB-CAN adapter speaking the LAWICEL slcan ASCII protocol on a pseudo-terminal.

On a station the computer reaches the CAN power modules through a USB-CAN adapter; here the
adapter's serial side is the slave of a pty, linked at the path station.toml names
(`[power_modules].channel`), so the driver opens it with python-can's real `slcan` interface
and cannot tell it from hardware (reference/hardware.md §8). The CAN side is a `CanNode`: the
simulated modules, which get every frame the host transmits and return their answers, written
back to the host as `T...` lines.

Lines end with CR. Commands: `S0`..`S8` (and `S9`, 83.3 kbit/s, as python-can maps it) set the
bitrate while the channel is closed; `O` opens and `C` closes the channel; `V` version, `N`
serial number, `F` status flags (read and cleared); `tiiiL<data>` / `TiiiiiiiiL<data>` transmit
an 11/29-bit frame while open. Success is answered with CR, a refused command with BEL. An
empty line is a no-op answered with CR (python-can sends one after `S<n>`). Garbage, a
malformed or unsupported line is answered with BEL and logged as a warning; nothing crashes the
adapter. If the host opens the channel at a bitrate other than the bus's, no frame gets through
in either direction and the bus-error flag is raised, as on a real bus.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntFlag
from pathlib import Path
from typing import Protocol

from workers.sim.pty_link import PtyLink, PtyLinkError

log = logging.getLogger(__name__)

OK = b"\r"
ERROR = b"\a"
MAX_LINE = 40  # the longest valid line, T + 8 id + 1 dlc + 16 data, is 26 characters
VERSION = "V1013"  # hardware 10, software 13 (python-can's get_version reads two 2-digit numbers)
SERIAL_NUMBER = "NSIM1"
BITRATES = {"0": 10_000, "1": 20_000, "2": 50_000, "3": 100_000, "4": 125_000, "5": 250_000,
            "6": 500_000, "7": 750_000, "8": 1_000_000, "9": 83_300}
_HEX = frozenset(string.hexdigits)


class AdapterFlag(IntFlag):
    """The `F` command's answer bits (LAWICEL CAN232)."""

    RX_FIFO_FULL = 1 << 0
    TX_FIFO_FULL = 1 << 1
    ERROR_WARNING = 1 << 2
    DATA_OVERRUN = 1 << 3
    ERROR_PASSIVE = 1 << 5
    ARBITRATION_LOST = 1 << 6
    BUS_ERROR = 1 << 7


@dataclass(frozen=True)
class CanFrame:
    arbitration_id: int
    data: bytes
    extended: bool = True


class CanNode(Protocol):
    """What sits on the CAN side of the adapter (the simulated power modules)."""

    bitrate: int

    def receive(self, frame: CanFrame) -> Sequence[CanFrame]:
        """A frame the host transmitted; return the frames the node answers with."""
        ...


class SlcanLinkError(PtyLinkError):
    """The adapter's link path cannot be created (something else is there)."""


class SlcanProtocol:
    """The adapter's line protocol, without I/O: `feed(bytes)` returns the bytes to send back."""

    def __init__(self, node: CanNode, name: str = "slcan") -> None:
        self.node = node
        self.name = name
        self.bitrate: int | None = None
        self.open = False
        self.flags = AdapterFlag(0)
        self._buffer = bytearray()

    def feed(self, data: bytes) -> bytes:
        self._buffer.extend(data)
        replies = bytearray()
        while (end := self._buffer.find(OK)) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[:end + 1]
            replies += self._line(line)
        if len(self._buffer) > MAX_LINE:
            self._refuse(f"{len(self._buffer)} bytes without a line end", bytes(self._buffer[:16]))
            self._buffer.clear()
            replies += ERROR
        return bytes(replies)

    def _line(self, raw: bytes) -> bytes:
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            return self._refuse("non-ASCII bytes", raw)
        if line and not line.isprintable():
            return self._refuse("control characters", raw)
        if not line:
            return OK
        handler = {"O": self._open, "C": self._close, "S": self._setup, "V": self._version,
                   "N": self._serial_number, "F": self._status, "t": self._transmit,
                   "T": self._transmit}.get(line[0])
        if handler is None:
            return self._refuse("unsupported command", raw)
        return handler(line)

    def _refuse(self, why: str, raw: bytes) -> bytes:
        log.warning("%s: refused line %r: %s", self.name, raw, why)
        return ERROR

    def _state_error(self, line: str, why: str) -> bytes:
        log.debug("%s: %r refused: %s", self.name, line, why)
        return ERROR

    def _open(self, line: str) -> bytes:
        if line != "O":
            return self._refuse("O takes no argument", line.encode())
        if self.open:
            return self._state_error(line, "channel already open")
        if self.bitrate is None:
            return self._state_error(line, "no bitrate set (S<n>)")
        self.open = True
        if self.bitrate != self.node.bitrate:
            log.warning("%s: opened at %d bit/s but the bus runs at %d bit/s: no frame gets through",
                        self.name, self.bitrate, self.node.bitrate)
        return OK

    def _close(self, line: str) -> bytes:
        if line != "C":
            return self._refuse("C takes no argument", line.encode())
        if not self.open:
            return self._state_error(line, "channel not open")
        self.open = False
        return OK

    def _setup(self, line: str) -> bytes:
        if len(line) != 2 or line[1] not in BITRATES:
            return self._refuse("S takes one digit 0..9", line.encode())
        if self.open:
            return self._state_error(line, "close the channel before changing the bitrate")
        self.bitrate = BITRATES[line[1]]
        return OK

    def _version(self, line: str) -> bytes:
        return (VERSION.encode() + OK) if line == "V" else self._refuse("V takes no argument", line.encode())

    def _serial_number(self, line: str) -> bytes:
        if line != "N":
            return self._refuse("N takes no argument", line.encode())
        return SERIAL_NUMBER.encode() + OK

    def _status(self, line: str) -> bytes:
        if line != "F":
            return self._refuse("F takes no argument", line.encode())
        flags, self.flags = self.flags, AdapterFlag(0)
        return f"F{int(flags):02X}".encode() + OK

    def _transmit(self, line: str) -> bytes:
        try:
            frame = parse_frame(line)
        except ValueError as error:
            return self._refuse(str(error), line.encode())
        if not self.open:
            return self._state_error(line, "channel not open")
        if self.bitrate != self.node.bitrate:
            self.flags |= AdapterFlag.BUS_ERROR
            return OK  # the adapter sent it; nobody on the bus could acknowledge it
        answers = self.node.receive(frame)
        return OK + b"".join(format_frame(answer).encode() + OK for answer in answers)


def parse_frame(line: str) -> CanFrame:
    """`tiiiL<data>` or `TiiiiiiiiL<data>` -> CanFrame; ValueError saying what is wrong."""
    extended = line[0] == "T"
    id_digits = 8 if extended else 3
    head = line[1:1 + id_digits + 1]
    if len(head) != id_digits + 1 or not all(c in _HEX for c in head[:-1]) or not head[-1].isdigit():
        raise ValueError(f"frame header must be {id_digits} hex id digits and a DLC digit")
    arbitration_id, dlc = int(head[:-1], 16), int(head[-1])
    if arbitration_id > (0x1FFF_FFFF if extended else 0x7FF):
        raise ValueError(f"id 0x{arbitration_id:X} is too large for a {'29' if extended else '11'}-bit frame")
    data = line[2 + id_digits:]
    if dlc > 8 or len(data) != 2 * dlc or not all(c in _HEX for c in data):
        raise ValueError(f"DLC {dlc} needs exactly {2 * dlc} hex data digits, got {data!r}")
    return CanFrame(arbitration_id, bytes.fromhex(data), extended)


def format_frame(frame: CanFrame) -> str:
    if frame.extended:
        return f"T{frame.arbitration_id:08X}{len(frame.data)}{frame.data.hex().upper()}"
    return f"t{frame.arbitration_id:03X}{len(frame.data)}{frame.data.hex().upper()}"


class SimulatedSlcanAdapter:
    """The adapter on a pty: `open()` in a running event loop, `close()` when done.

    It keeps the slave side open itself, so the line stays up while the driver restarts.
    """

    def __init__(self, link: Path, node: CanNode) -> None:
        self.link = link
        self.protocol = SlcanProtocol(node, name=f"slcan {link.name}")
        self._line = PtyLink(link, refused=SlcanLinkError)

    @property
    def slave_path(self) -> str:
        return self._line.slave_path

    def open(self) -> None:
        """Create the pty pair, point the link at its slave (replacing a stale link), listen."""
        self._line.open()
        self._line.watch(self._on_bytes)
        log.info("USB-CAN adapter (slcan) simulated on %s -> %s", self.link, self.slave_path)

    def _on_bytes(self, data: bytes) -> None:
        reply = self.protocol.feed(data)
        if reply and not self._line.write(reply):
            # the host has not read the line for a long while: a real adapter drops frames too
            self.protocol.flags |= AdapterFlag.DATA_OVERRUN

    def close(self) -> None:
        """Stop listening, remove our link (only if it still points at our pty), close the pty."""
        self._line.close()
