"""125 kHz EM4100 ASCII readers (RDM6300 class; reference/hardware.md §6.1).

A frame is 14 bytes: STX (0x02), 10 ASCII hex digits (version byte + 4-byte card number),
2 ASCII hex digits = XOR of the 5 data bytes, ETX (0x03). The reader repeats it for as long as
a card is held (about every `REPEAT_PERIOD_S`), so the host tells one hold from the next only
by a silence longer than that period. It only transmits: there is no command channel and no
buzzer control; panel readers beep by themselves on a read (`CAN_BEEP`).

`Em4100Parser` takes bytes as they arrive (a frame may be split across reads), resynchronises
on garbage at the next STX, and rejects bad frames with a logged reason.
"""

from __future__ import annotations

import logging
import string

log = logging.getLogger(__name__)

STX = 0x02
ETX = 0x03
DATA_DIGITS = 10
FRAME_LEN = 1 + DATA_DIGITS + 2 + 1
BAUDRATE = 9600
REPEAT_PERIOD_S = 0.1  # frame repetition of a held card (RDM6300 class; an assumption, ~)
CAN_BEEP = False  # transmit-only reader: it beeps by itself on a read, the host cannot ask it to
_HEX = frozenset(string.hexdigits.encode())


class FrameError(ValueError):
    """A frame-shaped byte run that is not a valid EM4100 frame."""


def checksum(data_hex: str) -> int:
    """XOR of the 5 bytes written as 10 hex digits."""
    result = 0
    for byte in bytes.fromhex(data_hex):
        result ^= byte
    return result


def encode_frame(uid: str) -> bytes:
    """The frame a reader sends for card `uid` (10 hex digits); used by the simulator."""
    data = normalise_uid(uid)
    return bytes([STX]) + f"{data}{checksum(data):02X}".encode() + bytes([ETX])


def normalise_uid(uid: str) -> str:
    """Upper-case 10-hex-digit card id, or FrameError saying why not."""
    if len(uid) != DATA_DIGITS or not all(c in string.hexdigits for c in uid):
        raise FrameError(f"an EM4100 id is {DATA_DIGITS} hex digits, got {uid!r}")
    return uid.upper()


def decode_frame(frame: bytes) -> str:
    """The idTag (10 upper-case hex digits) of one complete frame, or FrameError."""
    if len(frame) != FRAME_LEN or frame[0] != STX or frame[-1] != ETX:
        raise FrameError(f"not framed by STX/ETX in {FRAME_LEN} bytes: {frame!r}")
    body = frame[1:-1]
    if not all(byte in _HEX for byte in body):
        raise FrameError(f"non-hex characters in frame: {frame!r}")
    text = body.decode("ascii").upper()
    data, sent = text[:DATA_DIGITS], int(text[DATA_DIGITS:], 16)
    expected = checksum(data)
    if sent != expected:
        raise FrameError(f"bad checksum for {data}: got {sent:02X}, expected {expected:02X}")
    return data


class Em4100Parser:
    """Incremental parser: `feed(bytes)` returns the idTags of the frames completed so far."""

    def __init__(self, source: str = "reader") -> None:
        self.source = source
        self._buffer = bytearray()
        self.rejected = 0  # frames dropped (checksum, bad characters, missing ETX)

    def feed(self, data: bytes) -> list[str]:
        self._buffer.extend(data)
        uids: list[str] = []
        while True:
            start = self._buffer.find(STX)
            if start < 0:
                self._discard(len(self._buffer))
                return uids
            self._discard(start)
            if len(self._buffer) < FRAME_LEN:
                return uids
            uid = self._take_frame()
            if uid is not None:
                uids.append(uid)

    def _take_frame(self) -> str | None:
        """Consume the frame at the buffer's start (it begins with STX and is long enough)."""
        frame = bytes(self._buffer[:FRAME_LEN])
        restart = frame.find(STX, 1)
        if 0 < restart < FRAME_LEN - 1 and frame[-1] != ETX:
            # a new frame started inside this one: the first was cut short (reader glitch)
            self._reject(f"truncated frame {frame[:restart]!r}")
            del self._buffer[:restart]
            return None
        try:
            uid = decode_frame(frame)
        except FrameError as error:
            self._reject(str(error))
            del self._buffer[:1]  # resync at the next STX
            return None
        del self._buffer[:FRAME_LEN]
        return uid

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        log.warning("%s: EM4100 frame rejected: %s", self.source, reason)

    def _discard(self, count: int) -> None:
        if count:
            log.debug("%s: skipped %d bytes of line noise", self.source, count)
            del self._buffer[:count]
