"""The simulated controller's bootloader on raw register words: every packet and the whole
image are checked as the firmware checks them, a bad one is refused with its status code and
never installed, and the application comes back with the installed image's version."""

from __future__ import annotations

import pytest
from pymodbus.constants import ExcCodes

from workers.common.station_config import ConnectorConfig
from workers.drivers.controllers.bootloader_protocol import (
    BEGIN_START,
    FINISH,
    FINISH_CHECK,
    IMAGE_HEADER_BYTES,
    MAX_IMAGE_BYTES,
    MAX_PACKET_BYTES,
    PACKET_START,
    STATUS_COUNT,
    STATUS_START,
    BootStatus,
    ImageError,
    Status,
    build_image,
    crc16,
    crc32,
    decode_packet,
    decode_status,
    encode_begin,
    encode_packet,
    parse_image,
)
from workers.drivers.controllers.station_dc import (
    BOOTLOADER_LEAVE,
    BOOTLOADER_MAGIC,
    IDENTITY_COUNT,
    IDENTITY_START,
    HoldingRegister,
)
from workers.sim.controller_bootloader import BootloaderFaults, ControllerBootloader
from workers.sim.ev_controller import SimulatedController
from workers.sim.ev_controller_wire import Table

NEW_VERSION = (2, 3, 4)
IMAGE = build_image(NEW_VERSION, bytes(range(256)) * 2)  # 512 body bytes: 5 packets


def status(bootloader: ControllerBootloader) -> Status:
    words = bootloader.read(Table.INPUTS, STATUS_START, STATUS_COUNT)
    assert isinstance(words, list)
    return decode_status(words)


def begin(bootloader: ControllerBootloader, image: bytes = IMAGE, image_crc: int | None = None) -> None:
    crc = crc32(image) if image_crc is None else image_crc
    assert bootloader.write(BEGIN_START, encode_begin(len(image), crc)) is None


def send(bootloader: ControllerBootloader, offset: int, data: bytes) -> Status:
    assert bootloader.write(PACKET_START, encode_packet(offset, data)) is None
    return status(bootloader)


def upload(bootloader: ControllerBootloader, image: bytes = IMAGE) -> Status:
    """Every packet in order, then finish: the final status."""
    for offset in range(0, len(image), MAX_PACKET_BYTES):
        assert send(bootloader, offset, image[offset:offset + MAX_PACKET_BYTES]).code is BootStatus.PACKET_OK
    assert bootloader.write(FINISH, [FINISH_CHECK]) is None
    return status(bootloader)


def test_crc16_is_ccitt_false_and_packets_round_trip_with_an_odd_length() -> None:
    assert crc16(b"123456789") == 0x29B1
    words = encode_packet(70000, b"\x01\x02\x03")
    assert words == [1, 70000 - 65536, 3, crc16(b"\x01\x02\x03"), 0x0102, 0x0300]
    packet = decode_packet(words)
    assert (packet.offset, packet.data) == (70000, b"\x01\x02\x03")


@pytest.mark.parametrize(("image", "reason"), [
    (b"EVFW", "shorter than"),
    (b"XXXX" + IMAGE[4:], "magic"),
    (IMAGE + b"\0", "body bytes"),
    (build_image((1, 0, 0), b"\0" * MAX_IMAGE_BYTES), "exceeds"),
])
def test_a_wrong_image_header_is_refused(image: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        parse_image(image)


def test_an_upload_in_order_installs_the_image_version() -> None:
    bootloader = ControllerBootloader()
    assert status(bootloader).code is BootStatus.IDLE
    begin(bootloader)
    assert status(bootloader) == Status(BootStatus.READY, 0, 0)
    assert send(bootloader, 0, IMAGE[:128]) == Status(BootStatus.PACKET_OK, crc16(IMAGE[:128]), 128)
    assert upload_rest(bootloader, 128) == Status(BootStatus.IMAGE_OK, 0, len(IMAGE))
    assert bootloader.start_application((1, 0, 0)) == NEW_VERSION
    assert bootloader.start_application(NEW_VERSION) == NEW_VERSION  # installed once, runs since


def upload_rest(bootloader: ControllerBootloader, offset: int) -> Status:
    for start in range(offset, len(IMAGE), MAX_PACKET_BYTES):
        send(bootloader, start, IMAGE[start:start + MAX_PACKET_BYTES])
    bootloader.write(FINISH, [FINISH_CHECK])
    return status(bootloader)


def test_a_repeated_last_packet_is_acknowledged_again_not_stored_twice() -> None:
    bootloader = ControllerBootloader()
    begin(bootloader)
    send(bootloader, 0, IMAGE[:128])
    assert send(bootloader, 0, IMAGE[:128]) == Status(BootStatus.PACKET_OK, crc16(IMAGE[:128]), 128)
    assert upload_rest(bootloader, 128).code is BootStatus.IMAGE_OK


def corrupt(words: list[int]) -> list[int]:
    return [*words[:4], words[4] ^ 0x0001, *words[5:]]


@pytest.mark.parametrize(("words", "expected"), [
    (corrupt(encode_packet(128, IMAGE[128:256])), BootStatus.BAD_CRC),
    (encode_packet(256, IMAGE[256:384]), BootStatus.OUT_OF_ORDER),
    (encode_packet(0, IMAGE[:64]), BootStatus.OUT_OF_ORDER),
    (encode_packet(len(IMAGE) - 10, b"\0" * 20), BootStatus.BAD_OFFSET),
    ([0, 128, 129, 0, *[0] * 65], BootStatus.TOO_LARGE),
    ([0, 128, 0, 0], BootStatus.TOO_LARGE),
    (encode_packet(128, IMAGE[128:256])[:-1], BootStatus.TOO_LARGE),
])
def test_a_bad_packet_is_refused_and_nothing_stored(words: list[int], expected: BootStatus) -> None:
    bootloader = ControllerBootloader()
    begin(bootloader)
    send(bootloader, 0, IMAGE[:128])
    assert bootloader.write(PACKET_START, words) is None
    assert status(bootloader) == Status(expected, 0, 128)


def test_packets_and_finish_before_begin_are_refused() -> None:
    bootloader = ControllerBootloader()
    assert send(bootloader, 0, IMAGE[:128]).code is BootStatus.NOT_BEGUN
    bootloader.write(FINISH, [FINISH_CHECK])
    assert status(bootloader).code is BootStatus.NOT_BEGUN


@pytest.mark.parametrize(("address", "words", "answer"), [
    (BEGIN_START, encode_begin(IMAGE_HEADER_BYTES - 1, 0), ExcCodes.ILLEGAL_VALUE),
    (BEGIN_START, encode_begin(MAX_IMAGE_BYTES + 1, 0), ExcCodes.ILLEGAL_VALUE),
    (FINISH, [2], ExcCodes.ILLEGAL_VALUE),
    (BEGIN_START, [0, 100], ExcCodes.ILLEGAL_ADDRESS),
    (205, [1], ExcCodes.ILLEGAL_ADDRESS),
])
def test_malformed_writes_answer_modbus_exceptions(address: int, words: list[int], answer: ExcCodes) -> None:
    assert ControllerBootloader().write(address, words) is answer


def test_finish_refuses_an_incomplete_image_a_wrong_crc32_and_a_wrong_header() -> None:
    bootloader = ControllerBootloader()
    begin(bootloader)
    send(bootloader, 0, IMAGE[:128])
    bootloader.write(FINISH, [FINISH_CHECK])
    assert status(bootloader) == Status(BootStatus.INCOMPLETE, 0, 128)

    begin(bootloader, image_crc=crc32(IMAGE) ^ 1)
    assert upload(bootloader).code is BootStatus.CHECKSUM_ERROR

    headless = b"XXXX" + IMAGE[4:]
    begin(bootloader, headless)
    assert upload(bootloader, headless).code is BootStatus.BAD_HEADER
    assert bootloader.start_application((1, 0, 0)) == (1, 0, 0)  # nothing installed: the old one runs


def test_injected_faults_fail_packets_uploads_and_the_final_check() -> None:
    every_third = ControllerBootloader(BootloaderFaults(bad_crc_every=3))
    begin(every_third)
    codes = [send(every_third, offset, IMAGE[offset:offset + 128]).code for offset in (0, 128, 256)]
    assert codes == [BootStatus.PACKET_OK, BootStatus.PACKET_OK, BootStatus.BAD_CRC]

    first_two = ControllerBootloader(BootloaderFaults(failed_uploads=2))
    last = len(IMAGE) - len(IMAGE) % MAX_PACKET_BYTES
    for _ in range(2):
        begin(first_two)
        upload_rest(first_two, 0)
        assert status(first_two) == Status(BootStatus.INCOMPLETE, 0, last)  # its last packet was refused
    begin(first_two)
    assert upload(first_two).code is BootStatus.IMAGE_OK

    liar = ControllerBootloader(BootloaderFaults(wrong_checksum=True))
    begin(liar)
    assert upload(liar).code is BootStatus.CHECKSUM_ERROR


def connector() -> ConnectorConfig:
    return ConnectorConfig.model_validate({
        "id": 1, "standard": "CCS", "max_power_kw": 150.0, "contactor_coil": 0,
        "meter": {"bus": "b", "device_id": 1, "model": "sdm630"},
        "controller": {"bus": "b", "device_id": 21, "model": "station_dc"}})


def identity(controller: SimulatedController) -> list[int] | ExcCodes:
    return controller.wire.read(Table.INPUTS, IDENTITY_START, IDENTITY_COUNT)


def test_the_controller_answers_the_bootloader_registers_only_in_the_bootloader() -> None:
    controller = SimulatedController(connector())
    wire = controller.wire
    assert wire.read(Table.INPUTS, STATUS_START, STATUS_COUNT) is ExcCodes.ILLEGAL_ADDRESS
    assert wire.write(BEGIN_START, encode_begin(len(IMAGE), crc32(IMAGE))) is ExcCodes.ILLEGAL_ADDRESS

    assert wire.write(HoldingRegister.BOOTLOADER, [BOOTLOADER_MAGIC]) is None
    assert identity(controller) == [2, 1, 0, 0, 1]
    assert wire.write(BEGIN_START, encode_begin(len(IMAGE), crc32(IMAGE))) is None
    for offset in range(0, len(IMAGE), MAX_PACKET_BYTES):
        chunk = IMAGE[offset:offset + MAX_PACKET_BYTES]
        assert wire.write(PACKET_START, encode_packet(offset, chunk)) is None
    assert wire.write(FINISH, [FINISH_CHECK]) is None
    words = wire.read(Table.INPUTS, STATUS_START, STATUS_COUNT)
    assert isinstance(words, list) and decode_status(words).code is BootStatus.IMAGE_OK

    assert wire.write(HoldingRegister.BOOTLOADER, [BOOTLOADER_LEAVE]) is None
    assert identity(controller) == [2, *NEW_VERSION, 0]


def test_an_application_that_does_not_start_leaves_the_controller_in_the_bootloader() -> None:
    controller = SimulatedController(connector())
    controller.bootloader = ControllerBootloader(BootloaderFaults(application_starts=False))
    controller.wire.write(HoldingRegister.BOOTLOADER, [BOOTLOADER_MAGIC])
    assert controller.wire.write(HoldingRegister.BOOTLOADER, [BOOTLOADER_LEAVE]) is None
    assert identity(controller) == [2, 1, 0, 0, 1]
