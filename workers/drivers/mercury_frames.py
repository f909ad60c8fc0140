"""Incotex Mercury 230/234/236 frames: building requests, checking and decoding replies.

Incotex's own protocol, not Modbus (reference/hardware.md §1.5; wirenboard/wb-mqtt-serial
mercury230_device.cpp, Shden/mercury236): `[address][command][data...][CRC-16/MODBUS lo, hi]`
at 9600 8N1. A reply is `[address][data...][crc]`, or a 4-byte status frame
`[address][status][crc]` (low nibble: 0 OK ... 5 channel not open). Values are packed in
Incotex's byte orders: 3 bytes `((b0 & 0x3F) << 16) | (b2 << 8) | b1` with the direction of
active power in bit 7 of b0, and 4 bytes `((b1 & 0x3F) << 24) | (b0 << 16) | (b3 << 8) | b2`.

Pure functions shared by the driver (workers/drivers/mercury.py) and the simulator
(workers/sim/mercury_port.py), so both are tested on bytes without a line.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

STATUS_FRAME_LEN = 4
CRC_LEN = 2
PASSWORD_LEN = 6
READ_ALL_PHASES = 0x16  # command 0x08 parameter: the phases' values in one reply
ENERGY_SINCE_RESET = 0x00  # command 0x05 array: period 0 (since reset) << 4 | month 0
TARIFF_SUM = 0x00
THREE_BYTE_MAX = 0x3FFFFF
FOUR_BYTE_MAX = 0x3FFFFFFF
_ACTIVE_REVERSE = 0x80  # bit 7 of a power value's first byte: active power flows back (export)


class Command(IntEnum):
    TEST = 0x00
    OPEN = 0x01
    CLOSE = 0x02
    READ_ENERGY = 0x05
    READ_PARAMETER = 0x08


class Bwri(IntEnum):
    """What command 0x08 0x16 reads (the protocol's BWRI byte) and how many 3-byte values."""

    POWER = 0x00  # active power: sum, L1, L2, L3 (0.01 W)
    VOLTAGE = 0x11  # L1, L2, L3 (0.01 V)
    CURRENT = 0x21  # L1, L2, L3 (0.001 A)

    @property
    def values(self) -> int:
        return 4 if self is Bwri.POWER else 3


class AccessLevel(IntEnum):
    USER = 1
    ADMIN = 2


class Status(IntEnum):
    OK = 0
    INVALID = 1
    INTERNAL_ERROR = 2
    ACCESS_DENIED = 3
    CLOCK_ALREADY_SET = 4
    CHANNEL_CLOSED = 5


STATUS_TEXT = {
    Status.OK: "OK",
    Status.INVALID: "invalid command or parameter",
    Status.INTERNAL_ERROR: "internal meter error",
    Status.ACCESS_DENIED: "access level too low",
    Status.CLOCK_ALREADY_SET: "clock already corrected today",
    Status.CHANNEL_CLOSED: "channel not open",
}


class FrameError(ValueError):
    """Bytes that are not a usable reply; the message says what was wrong with them."""


@dataclass(frozen=True)
class Reply:
    """A checked reply: `status` for a 4-byte status frame, else the data bytes."""

    address: int
    status: int | None
    data: bytes


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS: reflected polynomial 0xA001, initial value 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(address: int, body: bytes) -> bytes:
    """`[address][body][crc lo][crc hi]`."""
    head = bytes([address]) + body
    return head + crc16(head).to_bytes(CRC_LEN, "little")


def crc_ok(raw: bytes) -> bool:
    return len(raw) > CRC_LEN and crc16(raw[:-CRC_LEN]) == int.from_bytes(raw[-CRC_LEN:], "little")


def open_request(address: int, level: AccessLevel, password: bytes) -> bytes:
    if len(password) != PASSWORD_LEN:
        raise ValueError(f"a Mercury password is {PASSWORD_LEN} bytes, got {len(password)}")
    return frame(address, bytes([Command.OPEN, level]) + password)


def parameter_request(address: int, bwri: Bwri) -> bytes:
    return frame(address, bytes([Command.READ_PARAMETER, READ_ALL_PHASES, bwri]))


def energy_request(address: int) -> bytes:
    return frame(address, bytes([Command.READ_ENERGY, ENERGY_SINCE_RESET, TARIFF_SUM]))


def reply_length(data_len: int) -> int:
    return 1 + data_len + CRC_LEN


def parse_reply(raw: bytes, address: int, data_len: int | None) -> Reply:
    """Check a reply to a request sent to `address` (0: whichever meter is on the line)
    that answers `data_len` data bytes, or only a status frame when None."""
    expected = reply_length(data_len) if data_len is not None else STATUS_FRAME_LEN
    if not raw:
        raise FrameError("no answer")
    if len(raw) in (expected, STATUS_FRAME_LEN) and crc_ok(raw):
        if address and raw[0] != address:
            raise FrameError(f"answered by address {raw[0]}, not {address}")
        if len(raw) == STATUS_FRAME_LEN:
            return Reply(raw[0], raw[1] & 0x0F, b"")
        return Reply(raw[0], None, raw[1:-CRC_LEN])
    if len(raw) == expected:
        raise FrameError(f"CRC error in a {len(raw)}-byte reply: {raw.hex(' ')}")
    if len(raw) < expected and (raw[0] == address or not address):
        raise FrameError(f"incomplete reply: {len(raw)} of {expected} bytes: {raw.hex(' ')}")
    raise FrameError(f"garbage on the line: {len(raw)} bytes where a {expected}-byte reply was due: "
                  f"{raw[:24].hex(' ')}")


def status_text(status: int) -> str:
    try:
        return STATUS_TEXT[Status(status)]
    except ValueError:
        return f"unknown status {status}"


# ---- value packing ---------------------------------------------------------------------

def decode_three(data: bytes, *, signed: bool = False) -> int:
    """One 3-byte value; `signed`: bit 7 of the first byte marks reverse active power."""
    magnitude = ((data[0] & 0x3F) << 16) | (data[2] << 8) | data[1]
    return -magnitude if signed and data[0] & _ACTIVE_REVERSE else magnitude


def encode_three(value: int) -> bytes:
    """The inverse of `decode_three(signed=True)` (the simulator's side)."""
    magnitude = abs(value)
    if magnitude > THREE_BYTE_MAX:
        raise ValueError(f"{value} does not fit a Mercury 3-byte value (max {THREE_BYTE_MAX})")
    first = (magnitude >> 16) | (_ACTIVE_REVERSE if value < 0 else 0)
    return bytes([first, magnitude & 0xFF, (magnitude >> 8) & 0xFF])


def decode_four(data: bytes) -> int:
    """One 4-byte energy counter."""
    return ((data[1] & 0x3F) << 24) | (data[0] << 16) | (data[3] << 8) | data[2]


def encode_four(value: int) -> bytes:
    if not 0 <= value <= FOUR_BYTE_MAX:
        raise ValueError(f"{value} does not fit a Mercury 4-byte counter (0..{FOUR_BYTE_MAX})")
    return bytes([(value >> 16) & 0xFF, value >> 24, value & 0xFF, (value >> 8) & 0xFF])


def decode_threes(data: bytes, count: int, *, signed: bool = False) -> list[int]:
    if len(data) != 3 * count:
        raise FrameError(f"expected {count} 3-byte values, got {len(data)} bytes")
    return [decode_three(data[i:i + 3], signed=signed) for i in range(0, len(data), 3)]


def decode_fours(data: bytes, count: int) -> list[int]:
    if len(data) != 4 * count:
        raise FrameError(f"expected {count} 4-byte values, got {len(data)} bytes")
    return [decode_four(data[i:i + 4]) for i in range(0, len(data), 4)]
