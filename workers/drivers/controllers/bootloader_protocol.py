"""The charge controllers' bootloader protocol (docs/controller-protocol.md, "Bootloader and
flashing"): register addresses, status codes, the firmware image header and the checksums.

Pure functions on words and bytes, shared by the flasher (workers/drivers/controller_flasher.py)
and the simulated bootloader (workers/sim/controller_bootloader.py), so both ends of the wire use
one definition, as station_dc.py does for the application's registers.

Checksums come from the standard library so a vendor can reproduce them with any tool:
CRC-16/CCITT-FALSE (`binascii.crc_hqx(data, 0xFFFF)`, check value 0x29B1) per packet, CRC-32
(IEEE 802.3, `zlib.crc32`) over the whole image.
"""

from __future__ import annotations

import binascii
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

STATUS_START, STATUS_COUNT = 110, 4  # input: status, echoed packet CRC, bytes received (2 words)
BEGIN_START, BEGIN_COUNT = 200, 4  # holding: image size (2 words), image CRC-32 (2 words)
PACKET_START, PACKET_HEADER_COUNT = 210, 4  # holding: offset (2 words), length, CRC-16; data from 214
FINISH = 280  # holding: write FINISH_CHECK to have the whole image checked
FINISH_CHECK = 1
MAX_PACKET_BYTES = 128  # 64 data words: one FC16 request of 68 words carries a packet
MAX_PACKET_WORDS = MAX_PACKET_BYTES // 2
MAX_IMAGE_BYTES = 0x40000  # 256 KiB: the application flash of the reference controller
CRC16_INIT = 0xFFFF

IMAGE_MAGIC = b"EVFW"
_HEADER = struct.Struct(">4sHHHI")  # magic, major, minor, patch, body length in bytes
IMAGE_HEADER_BYTES = _HEADER.size

Version = tuple[int, int, int]


class BootStatus(IntEnum):
    """Input register 110: what the bootloader made of the last begin, packet or finish."""

    IDLE = 0  # nothing begun since the bootloader started
    READY = 1  # begun: waiting for the packet at offset 0
    PACKET_OK = 2  # the packet was stored; 111 echoes its CRC-16
    IMAGE_OK = 3  # finish: the whole image matches its CRC-32 and header, it is installed
    BAD_CRC = 16  # the packet's data does not match its CRC-16
    BAD_OFFSET = 17  # the packet reaches beyond the image size given at begin
    OUT_OF_ORDER = 18  # the packet's offset is not the number of bytes received so far
    TOO_LARGE = 19  # length 0 or above 128 bytes, or data words that do not match the length
    NOT_BEGUN = 20  # a packet or finish without a begin
    CHECKSUM_ERROR = 32  # finish: the image's CRC-32 differs from the one given at begin
    INCOMPLETE = 33  # finish before every byte arrived
    BAD_HEADER = 34  # finish: the image header is wrong (magic, or length against the size)


class ImageError(ValueError):
    """A firmware image that must not be flashed (the message says why)."""


@dataclass(frozen=True)
class FirmwareImage:
    version: Version
    body_bytes: int

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


@dataclass(frozen=True)
class Status:
    code: BootStatus
    echoed_crc: int
    received_bytes: int


@dataclass(frozen=True)
class Packet:
    offset: int
    crc: int
    data: bytes


def build_image(version: Version, body: bytes) -> bytes:
    """An image as a firmware build produces it: the header, then the application's bytes."""
    return _HEADER.pack(IMAGE_MAGIC, *version, len(body)) + body


def parse_image(image: bytes) -> FirmwareImage:
    if len(image) < IMAGE_HEADER_BYTES:
        raise ImageError(f"{len(image)} bytes is shorter than the {IMAGE_HEADER_BYTES}-byte image header")
    if len(image) > MAX_IMAGE_BYTES:
        raise ImageError(f"{len(image)} bytes exceeds the controller's {MAX_IMAGE_BYTES}-byte flash")
    magic, major, minor, patch, body_bytes = _HEADER.unpack_from(image)
    if magic != IMAGE_MAGIC:
        raise ImageError(f"image magic {magic!r} is not {IMAGE_MAGIC!r}")
    if IMAGE_HEADER_BYTES + body_bytes != len(image):
        raise ImageError(f"header says {body_bytes} body bytes, the image has "
                         f"{len(image) - IMAGE_HEADER_BYTES}")
    return FirmwareImage((major, minor, patch), body_bytes)


def crc16(data: bytes) -> int:
    return binascii.crc_hqx(data, CRC16_INIT)


def crc32(data: bytes) -> int:
    return zlib.crc32(data)


def _split32(value: int) -> list[int]:
    return [value >> 16 & 0xFFFF, value & 0xFFFF]


def _join32(high: int, low: int) -> int:
    return high << 16 | low


def encode_begin(size: int, image_crc32: int) -> list[int]:
    return [*_split32(size), *_split32(image_crc32)]


def decode_begin(words: list[int]) -> tuple[int, int]:
    """(image size, image CRC-32); ValueError for a size the controller cannot hold."""
    if len(words) != BEGIN_COUNT:
        raise ValueError(f"begin is {BEGIN_COUNT} registers, got {len(words)}")
    size = _join32(words[0], words[1])
    if not IMAGE_HEADER_BYTES <= size <= MAX_IMAGE_BYTES:
        raise ValueError(f"image size {size} outside {IMAGE_HEADER_BYTES}..{MAX_IMAGE_BYTES}")
    return size, _join32(words[2], words[3])


def encode_packet(offset: int, data: bytes) -> list[int]:
    """Header and data words (two bytes each, high byte first; an odd last byte is padded with 0)."""
    if not 1 <= len(data) <= MAX_PACKET_BYTES:
        raise ValueError(f"a packet carries 1..{MAX_PACKET_BYTES} bytes, got {len(data)}")
    padded = data + b"\0" * (len(data) % 2)
    words = [padded[i] << 8 | padded[i + 1] for i in range(0, len(padded), 2)]
    return [*_split32(offset), len(data), crc16(data), *words]


def decode_packet(words: list[int]) -> Packet:
    """ValueError when the length is out of range or the data words do not match it (TOO_LARGE)."""
    if len(words) < PACKET_HEADER_COUNT:
        raise ValueError(f"a packet has a {PACKET_HEADER_COUNT}-register header, got {len(words)} registers")
    offset, length, crc = _join32(words[0], words[1]), words[2], words[3]
    data_words = words[PACKET_HEADER_COUNT:]
    if not 1 <= length <= MAX_PACKET_BYTES or len(data_words) != (length + 1) // 2:
        raise ValueError(f"length {length} with {len(data_words)} data registers")
    data = b"".join(word.to_bytes(2, "big") for word in data_words)[:length]
    return Packet(offset, crc, data)


def encode_status(status: Status) -> list[int]:
    return [status.code, status.echoed_crc, *_split32(status.received_bytes)]


def decode_status(words: list[int]) -> Status:
    if len(words) != STATUS_COUNT:
        raise ValueError(f"status is {STATUS_COUNT} registers, got {len(words)}")
    try:
        code = BootStatus(words[0])
    except ValueError:
        raise ValueError(f"unknown bootloader status {words[0]}") from None
    return Status(code, words[1], _join32(words[2], words[3]))
