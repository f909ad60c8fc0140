"""PN532 frames (reference/hardware.md §6.2 worked frames) and the driver against a scripted
device on a real pty: checksums, ACK/NACK/error frames, garbage, truncation, silence."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.waiting import async_wait_until
from workers.drivers.pn532 import (
    ACK_FRAME,
    ERROR_FRAME,
    HOST_TO_READER,
    NACK_FRAME,
    READER_TO_HOST,
    WAKE_UP,
    Command,
    Frame,
    FrameKind,
    FrameReader,
    Pn532,
    Pn532Error,
    Pn532Port,
    Target,
    command_frame,
    encode_frame,
    gpio_levels,
    parse_target,
    reply_frame,
)
from workers.sim.rfid_port import SerialLink

LIST_TARGET = bytes.fromhex("0000ff04fcd44a0100e100")
DEADBEEF_LISTED = bytes.fromhex("0000ff0cf4d54b0101000408 04deadbeef9600")
SAM_CONFIGURATION = bytes.fromhex("0000ff05fbd4140100011600")
GET_FIRMWARE_VERSION = bytes.fromhex("0000ff02fed4022a00")
FIRMWARE_ANSWER = reply_frame(Command.GET_FIRMWARE_VERSION, bytes([0x32, 0x01, 0x06, 0x07]))


def test_commands_encode_to_the_worked_frames() -> None:
    assert command_frame(Command.IN_LIST_PASSIVE_TARGET, b"\x01\x00") == LIST_TARGET
    assert command_frame(Command.SAM_CONFIGURATION, b"\x01\x00\x01") == SAM_CONFIGURATION
    assert command_frame(Command.GET_FIRMWARE_VERSION) == GET_FIRMWARE_VERSION


def test_the_worked_answer_decodes_to_the_card() -> None:
    frames = FrameReader(READER_TO_HOST, "test").feed(DEADBEEF_LISTED)
    assert frames == [Frame(FrameKind.INFORMATION, bytes.fromhex("4b0101000408 04deadbeef"))]
    target = parse_target(frames[0].data[1:], "test")
    assert target == Target(number=1, sens_res=0x0004, sel_res=0x08, uid=bytes.fromhex("deadbeef"))
    assert target.id_tag == "DEADBEEF"
    assert reply_frame(Command.IN_LIST_PASSIVE_TARGET, frames[0].data[1:]) == DEADBEEF_LISTED


@pytest.mark.parametrize("data", [b"", b"\x02", bytes(range(40)), b"\xff" * 254])
def test_length_and_data_checksums_make_their_sums_zero(data: bytes) -> None:
    frame = encode_frame(HOST_TO_READER, data)
    length, lcs = frame[3], frame[4]
    assert length == len(data) + 1 and (length + lcs) & 0xFF == 0
    assert sum(frame[5:-1]) & 0xFF == 0  # TFI + data + DCS
    assert frame[:3] == b"\x00\x00\xff" and frame[-1] == 0


def test_a_frame_too_long_for_a_normal_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="extended frame"):
        encode_frame(HOST_TO_READER, bytes(255))


def test_ack_nack_and_error_frames_are_recognised() -> None:
    reader = FrameReader(READER_TO_HOST, "test")
    assert [f.kind for f in reader.feed(ACK_FRAME + NACK_FRAME + ERROR_FRAME)] == [
        FrameKind.ACK, FrameKind.NACK, FrameKind.ERROR]
    assert reader.rejected == 0


def test_a_frame_split_into_single_bytes_is_reassembled() -> None:
    reader = FrameReader(READER_TO_HOST, "test")
    frames = [frame for byte in ACK_FRAME + DEADBEEF_LISTED for frame in reader.feed(bytes([byte]))]
    assert [f.kind for f in frames] == [FrameKind.ACK, FrameKind.INFORMATION]


def test_garbage_before_a_frame_is_skipped_with_a_warning(caplog) -> None:
    reader = FrameReader(READER_TO_HOST, "ttyTEST")
    with caplog.at_level(logging.WARNING):
        frames = reader.feed(b"\x55\xaa\x13\x00\xff\x37" + ACK_FRAME)
    assert frames == [Frame(FrameKind.ACK)]
    assert "ttyTEST: PN532 skipped 3 bytes of line noise before a frame" in caplog.text


def test_a_noisy_line_warns_once_until_a_frame_arrives_clean(caplog) -> None:
    reader = FrameReader(READER_TO_HOST, "test")
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            assert reader.feed(b"noise" + ACK_FRAME) == [Frame(FrameKind.ACK)]
        assert len(caplog.records) == 1
        reader.feed(ACK_FRAME)  # clean
        reader.feed(b"noise" + ACK_FRAME)
    assert len(caplog.records) == 2


def test_zero_preamble_bytes_are_not_line_noise(caplog) -> None:
    reader = FrameReader(READER_TO_HOST, "test")
    with caplog.at_level(logging.WARNING):
        assert reader.feed(bytes(5) + ACK_FRAME + bytes(3) + ACK_FRAME) == [Frame(FrameKind.ACK)] * 2
    assert caplog.text == ""


@pytest.mark.parametrize(("bad", "reason"), [
    (DEADBEEF_LISTED[:-2] + b"\x97\x00", "bad data checksum 97"),
    (bytes.fromhex("0000ff0cf5") + DEADBEEF_LISTED[5:], "bad length checksum: LEN 0C, LCS F5"),
    (bytes.fromhex("0000ffffff0108f7d54b00e000"), "extended information frame (LEN=LCS=FF) is not supported"),
    (LIST_TARGET, "unexpected TFI D4 (expected D5)"),
])
def test_bad_frames_are_rejected_with_a_reason_and_the_next_frame_still_reads(bad, reason,
                                                                              caplog) -> None:
    reader = FrameReader(READER_TO_HOST, "ttyTEST")
    with caplog.at_level(logging.WARNING):
        frames = reader.feed(bad + ACK_FRAME)
    assert frames[-1] == Frame(FrameKind.ACK)
    assert frames[:-1] == ([] if "length checksum" in reason else [Frame(FrameKind.REJECTED)])
    assert reader.rejected == 1
    assert f"ttyTEST: PN532 frame rejected: {reason}" in caplog.text


def test_a_truncated_frame_is_rejected_when_the_next_frame_arrives() -> None:
    reader = FrameReader(READER_TO_HOST, "test")
    assert reader.feed(DEADBEEF_LISTED[:9]) == []
    assert reader.pending == 8
    frames = reader.feed(DEADBEEF_LISTED)
    assert [f.kind for f in frames] == [FrameKind.REJECTED, FrameKind.INFORMATION]
    assert reader.rejected == 1


@pytest.mark.parametrize(("params", "uid"), [
    (bytes.fromhex("0101 0044 00 07 04a1b2c3d4e5f6"), "04A1B2C3D4E5F6"),
    (bytes.fromhex("0101 0084 20 0a 00112233445566778899"), "00112233445566778899"),
])
def test_seven_and_ten_byte_uids_become_their_hex_id_tag(params: bytes, uid: str) -> None:
    target = parse_target(params, "test")
    assert target is not None and target.id_tag == uid


def test_no_target_listed_is_none() -> None:
    assert parse_target(b"\x00", "test") is None


@pytest.mark.parametrize("params", [
    bytes.fromhex("0101 0004 08 05 0011223344"),  # no ISO 14443 UID has 5 bytes
    bytes.fromhex("0101 0004 08 04 0011"),  # shorter than it says
    bytes.fromhex("0101 00"),
])
def test_malformed_target_lists_are_refused(params: bytes) -> None:
    with pytest.raises(Pn532Error, match=r"UID|too short"):
        parse_target(params, "test")


def test_gpio_levels_keep_the_reserved_pins_high_and_touch_one_port() -> None:
    assert gpio_levels(30, high=True) == bytes([0x95, 0x00])
    assert gpio_levels(30, high=False) == bytes([0x94, 0x00])
    assert gpio_levels(35, high=True) == bytes([0xB4, 0x00])
    assert gpio_levels(72, high=True) == bytes([0x00, 0x84])
    with pytest.raises(ValueError, match="not a free PN532 GPIO"):
        gpio_levels(32, high=True)


class ScriptedReader:
    """The device side of a pty: answers each command frame with what `script` returns."""

    def __init__(self, link: SerialLink, script: Callable[[bytes], bytes]) -> None:
        self.received: list[Frame] = []
        self.raw = bytearray()
        self._script = script
        self._frames = FrameReader(HOST_TO_READER, "scripted")
        self._line = link
        link.watch(self._on_bytes)

    def _on_bytes(self, data: bytes) -> None:
        self.raw.extend(data)
        for frame in self._frames.feed(data.lstrip(b"\x55")):
            self.received.append(frame)
            if frame.kind is FrameKind.INFORMATION or frame.kind is FrameKind.NACK:
                self._line.write(self._script(frame.data if frame.data else b"NACK"))


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[tuple[SerialLink, Pn532Port]]:
    link = SerialLink(tmp_path / "ttyPN532")
    link.open()
    port = Pn532Port(str(link.link), 115200)
    port.open()
    try:
        yield link, port
    finally:
        port.close()
        link.close()


def driver(port: Pn532Port) -> Pn532:
    return Pn532(port, ack_timeout_s=0.1, reply_timeout_s=0.2)


def answer_firmware(ic: int = 0x32) -> Callable[[bytes], bytes]:
    def script(command: bytes) -> bytes:
        if command[0] == Command.GET_FIRMWARE_VERSION:
            return ACK_FRAME + reply_frame(Command.GET_FIRMWARE_VERSION, bytes([ic, 1, 6, 7]))
        return ACK_FRAME + reply_frame(Command(command[0]))
    return script


async def test_initialise_wakes_configures_and_identifies_the_reader(line) -> None:
    link, port = line
    device = ScriptedReader(link, answer_firmware())
    firmware = await driver(port).initialise()
    assert str(firmware) == "PN532 firmware 1.6 (support 07)"
    assert device.raw.startswith(WAKE_UP + SAM_CONFIGURATION)
    assert [f.data[0] for f in device.received] == [
        Command.SAM_CONFIGURATION, Command.RF_CONFIGURATION, Command.GET_FIRMWARE_VERSION]


async def test_another_chip_answering_is_refused(line) -> None:
    link, port = line
    ScriptedReader(link, answer_firmware(ic=0x33))
    with pytest.raises(Pn532Error, match="wrong device answering: IC 33 is not a PN532"):
        await driver(port).initialise()


@pytest.mark.parametrize(("answer", "message"), [
    (b"", "no ACK to GET_FIRMWARE_VERSION within 100 ms"),
    (FIRMWARE_ANSWER, "no ACK to GET_FIRMWARE_VERSION: got information frame first"),
    (ACK_FRAME, "no answer to GET_FIRMWARE_VERSION within 200 ms"),
    (ACK_FRAME + FIRMWARE_ANSWER[:8], "truncated frame (7 bytes, then silence) waiting for the answer"),
    (ACK_FRAME + ERROR_FRAME, "error frame (syntax error) in answer to GET_FIRMWARE_VERSION"),
    (ACK_FRAME + reply_frame(Command.SAM_CONFIGURATION),
     "answer code 15 does not match GET_FIRMWARE_VERSION"),
])
async def test_bad_answers_are_clear_errors_and_the_command_is_aborted(line, answer, message) -> None:
    link, port = line
    device = ScriptedReader(link, lambda command: answer)
    with pytest.raises(Pn532Error, match=re.escape(message)):
        await driver(port).call(Command.GET_FIRMWARE_VERSION)
    async def aborted() -> bool:
        return bool(device.received) and device.received[-1] == Frame(FrameKind.ACK)
    await async_wait_until(aborted, timeout_s=2, what="the host's ACK that aborts the command")


async def test_a_corrupted_answer_is_asked_for_again_with_nack(line) -> None:
    link, port = line
    corrupted = FIRMWARE_ANSWER[:-2] + bytes([FIRMWARE_ANSWER[-2] ^ 1, 0])
    answers = iter([ACK_FRAME + corrupted, FIRMWARE_ANSWER])
    device = ScriptedReader(link, lambda command: next(answers))
    assert await driver(port).call(Command.GET_FIRMWARE_VERSION) == bytes([0x32, 1, 6, 7])
    assert device.received[-1] == Frame(FrameKind.NACK)


async def test_an_answer_corrupted_again_after_nack_is_an_error(line) -> None:
    link, port = line
    corrupted = FIRMWARE_ANSWER[:-2] + bytes([FIRMWARE_ANSWER[-2] ^ 1, 0])
    ScriptedReader(link, lambda command: corrupted if command == b"NACK" else ACK_FRAME + corrupted)
    with pytest.raises(Pn532Error, match="answer to GET_FIRMWARE_VERSION corrupted twice"):
        await driver(port).call(Command.GET_FIRMWARE_VERSION)


async def test_garbage_before_the_ack_does_not_break_the_exchange(line) -> None:
    link, port = line
    ScriptedReader(link, lambda command: b"\x13\x37noise" + ACK_FRAME + b"\xfe" + FIRMWARE_ANSWER)
    assert await driver(port).call(Command.GET_FIRMWARE_VERSION) == bytes([0x32, 1, 6, 7])


async def test_a_stale_answer_left_on_the_line_is_dropped_before_the_next_command(line) -> None:
    link, port = line
    link.write(FIRMWARE_ANSWER)  # a late answer to an aborted command
    await asyncio.sleep(0.05)
    ScriptedReader(link, lambda command: ACK_FRAME + reply_frame(Command.SAM_CONFIGURATION))
    assert await driver(port).call(Command.SAM_CONFIGURATION, b"\x01\x00\x01") == b""
