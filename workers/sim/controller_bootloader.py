"""The simulated charge controller's bootloader: what answers on the wire while `mode` = 1.

It checks every packet as the controller's firmware does (CRC-16, offset, order, length), the
whole image at finish (CRC-32 and header), and installs the image's version for the next start
of the application. The application flash is two banks: a failed upload leaves the old
application in place, so rebooting after a failure starts the old version again.

A packet that repeats the last one stored (same offset, length and CRC) is acknowledged again
without storing it twice: on RS485 the hub asks again when an answer was garbled, and the
request may well have arrived the first time.

`BootloaderFaults` lets a test make a controller misbehave (a constructor option: these faults
are a test's business, not `manage.py sim fault`'s).
"""

from __future__ import annotations

from dataclasses import dataclass

from pymodbus.constants import ExcCodes

from workers.drivers.controllers.bootloader_protocol import (
    BEGIN_COUNT,
    BEGIN_START,
    FINISH,
    FINISH_CHECK,
    PACKET_START,
    STATUS_START,
    BootStatus,
    ImageError,
    Packet,
    Status,
    Version,
    crc16,
    crc32,
    decode_begin,
    decode_packet,
    encode_begin,
    encode_status,
    parse_image,
)
from workers.sim.ev_controller_wire import Table


@dataclass
class BootloaderFaults:
    bad_crc_every: int = 0  # every Nth packet received fails its CRC check (0: never)
    failed_uploads: int = 0  # the first K uploads each have their last packet refused (BAD_CRC)
    wrong_checksum: bool = False  # finish always reports CHECKSUM_ERROR
    application_starts: bool = True  # False: a reboot falls back into the bootloader


@dataclass
class _Upload:
    size: int
    image_crc32: int
    spoiled: bool  # one of the first `failed_uploads`
    received: bytearray
    last: Packet | None = None


class ControllerBootloader:
    def __init__(self, faults: BootloaderFaults | None = None) -> None:
        self.faults = faults or BootloaderFaults()
        self.installed: Version | None = None  # the last image verified and not yet started
        self.uploads = 0
        self._packets = 0
        self._upload: _Upload | None = None
        self._status = Status(BootStatus.IDLE, 0, 0)

    def restart(self) -> None:
        """The bootloader starts afresh: nothing begun (an unfinished upload is lost)."""
        self._upload = None
        self._status = Status(BootStatus.IDLE, 0, 0)

    def start_application(self, running: Version) -> Version | None:
        """The version the application starts with after the reboot (`running` when nothing new
        was installed); None: the application does not start and the bootloader stays."""
        if not self.faults.application_starts:
            self.restart()
            return None
        version, self.installed = self.installed or running, None
        return version

    @property
    def status(self) -> Status:
        return self._status

    def read(self, table: Table, address: int, count: int) -> list[int] | ExcCodes:
        if table is Table.INPUTS:
            return _words(STATUS_START, encode_status(self._status), address, count)
        upload = self._upload
        begin = encode_begin(upload.size, upload.image_crc32) if upload else [0] * BEGIN_COUNT
        return _words(BEGIN_START, begin, address, count)

    def write(self, address: int, values: list[int]) -> ExcCodes | None:
        if address == BEGIN_START and len(values) == BEGIN_COUNT:
            return self._begin(values)
        if address == PACKET_START:
            self._status = self._packet(values)
            return None
        if address == FINISH and values == [FINISH_CHECK]:
            self._status = self._finish()
            return None
        if address == FINISH:
            return ExcCodes.ILLEGAL_VALUE
        return ExcCodes.ILLEGAL_ADDRESS

    def _begin(self, words: list[int]) -> ExcCodes | None:
        try:
            size, image_crc32 = decode_begin(words)
        except ValueError:
            return ExcCodes.ILLEGAL_VALUE
        self.uploads += 1
        self._upload = _Upload(size, image_crc32, self.uploads <= self.faults.failed_uploads, bytearray())
        self._status = Status(BootStatus.READY, 0, 0)
        return None

    def _packet(self, words: list[int]) -> Status:
        upload = self._upload
        if upload is None:
            return Status(BootStatus.NOT_BEGUN, 0, 0)
        received = len(upload.received)
        try:
            packet = decode_packet(words)
        except ValueError:
            return Status(BootStatus.TOO_LARGE, 0, received)
        if packet.offset + len(packet.data) > upload.size:
            return Status(BootStatus.BAD_OFFSET, 0, received)
        if packet == upload.last and packet.offset + len(packet.data) == received:
            return Status(BootStatus.PACKET_OK, packet.crc, received)
        if packet.offset != received:
            return Status(BootStatus.OUT_OF_ORDER, 0, received)
        if crc16(packet.data) != packet.crc or self._spoils(upload, packet):
            return Status(BootStatus.BAD_CRC, 0, received)
        upload.received += packet.data
        upload.last = packet
        return Status(BootStatus.PACKET_OK, packet.crc, len(upload.received))

    def _spoils(self, upload: _Upload, packet: Packet) -> bool:
        """Whether an injected fault fails this packet's CRC check."""
        self._packets += 1
        every = self.faults.bad_crc_every
        if every and self._packets % every == 0:
            return True
        return upload.spoiled and packet.offset + len(packet.data) == upload.size

    def _finish(self) -> Status:
        upload = self._upload
        if upload is None:
            return Status(BootStatus.NOT_BEGUN, 0, 0)
        image, received = bytes(upload.received), len(upload.received)
        if received < upload.size:
            return Status(BootStatus.INCOMPLETE, 0, received)
        if crc32(image) != upload.image_crc32 or self.faults.wrong_checksum:
            return Status(BootStatus.CHECKSUM_ERROR, 0, received)
        try:
            self.installed = parse_image(image).version
        except ImageError:
            return Status(BootStatus.BAD_HEADER, 0, received)
        self._upload = None
        return Status(BootStatus.IMAGE_OK, 0, received)


def _words(start: int, words: list[int], address: int, count: int) -> list[int] | ExcCodes:
    """The asked range if it lies within the block, else exception 02 as a device answers."""
    if start <= address and address + count <= start + len(words):
        return words[address - start:address - start + count]
    return ExcCodes.ILLEGAL_ADDRESS
