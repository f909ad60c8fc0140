"""NXP PN532 13.56 MHz reader over HSU (UART 115200 8N1): frames and an async polling driver.

Facts from reference/hardware.md §6.2-6.3 and the PN532 user manual (UM0701-02 §6.2):
a normal information frame is `00 00 FF LEN LCS TFI PD0..PDn DCS 00` (LEN counts TFI and
data, LEN + LCS = 0 and TFI + ΣPD + DCS = 0 mod 256; TFI D4 host->reader, D5 reader->host);
the reader ACKs every command (`00 00 FF 00 FF 00`) before its answer; NACK
(`00 00 FF FF 00 00`) asks it to send its last answer again; an application-level error is
the error frame `00 00 FF 01 FF 7F 81 00`; LEN = LCS = FF opens an extended frame, which no
answer we ask for needs, so it is refused. On HSU the reader sleeps until `55 55 00…`.

The driver wakes the reader, configures it (SAMConfiguration, a finite passive-activation
retry count so a poll with no card answers at once instead of waiting forever), identifies it
(GetFirmwareVersion must name a PN532), then polls InListPassiveTarget (one ISO 14443A target
at 106 kbps). After a read it sends InRelease, which puts the card to standby (HALT): it is not
listed again while it stays on the reader, so a held card is one read. The PN532 has no
buzzer; a buzzer on one of its GPIOs is pulsed with WriteGPIO.

Every wire problem (timeout, missing ACK, bad checksum, garbage, truncated frame, error frame,
wrong device) is a `Pn532Error` with a sentence saying what happened; the parser resyncs on
the next start code, stale bytes are dropped before each command, and a timed-out command is
aborted with an ACK, so the next command starts clean.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from workers.drivers.errors import DeviceError
from workers.drivers.serial_port import SerialPort

log = logging.getLogger(__name__)

START_CODE = b"\x00\xff"
ACK_FRAME = bytes.fromhex("0000ff00ff00")
NACK_FRAME = bytes.fromhex("0000ffff0000")
ERROR_FRAME = bytes.fromhex("0000ff01ff7f8100")
WAKE_UP = b"\x55\x55" + bytes(14)  # HSU wake-up: the reader answers nothing to it
HOST_TO_READER = 0xD4
READER_TO_HOST = 0xD5
ERROR_TFI = 0x7F
MAX_NORMAL_BODY = 255  # TFI + data in a normal frame

PN532_IC = 0x32  # GetFirmwareVersion's IC byte for a PN532
SAM_NORMAL_MODE = bytes([0x01, 0x00, 0x01])  # normal mode, no timeout, IRQ pin used
RF_MAX_RETRIES_ITEM = 0x05
# MxRtyATR (default), MxRtyPSL (default), MxRtyPassiveActivation: 0xFF would wait for a card
# forever; a small count makes InListPassiveTarget answer "no target" at once
RF_MAX_RETRIES = bytes([0xFF, 0x01, 0x02])
ONE_TARGET_106_KBPS_TYPE_A = bytes([0x01, 0x00])
UID_LENGTHS = (4, 7, 10)  # ISO/IEC 14443-3 single, double, triple size

GPIO_VALIDATE = 0x80  # WriteGPIO changes a port only when its byte has bit 7 set
P3_KEEP_HIGH = (1 << 2) | (1 << 4)  # P32 and P34 are not free GPIOs: they must stay high
BEEP_PINS = (30, 31, 33, 35, 71, 72)  # free GPIOs: P30, P31, P33, P35, P71, P72

ACK_TIMEOUT_S = 0.25  # the ACK follows a command within a few ms at 115200 baud
REPLY_TIMEOUT_S = 1.0  # InListPassiveTarget with two activation tries answers well within this


class Command(IntEnum):
    GET_FIRMWARE_VERSION = 0x02
    WRITE_GPIO = 0x0E
    SAM_CONFIGURATION = 0x14
    RF_CONFIGURATION = 0x32
    IN_DESELECT = 0x44
    IN_LIST_PASSIVE_TARGET = 0x4A
    IN_RELEASE = 0x52

    @property
    def reply_code(self) -> int:
        """The answer's PD0: the command code + 1."""
        return self + 1


class Pn532Error(DeviceError):
    """The reader answered wrongly or not at all (the port itself is still open)."""


class FrameKind(StrEnum):
    ACK = "ack"
    NACK = "nack"
    ERROR = "error frame"
    INFORMATION = "information frame"
    REJECTED = "rejected frame"  # a frame failed its checks (DCS, TFI, extended length)


@dataclass(frozen=True)
class Frame:
    kind: FrameKind
    data: bytes = b""  # information frame: PD0 (command or reply code) .. PDn


def encode_frame(tfi: int, data: bytes) -> bytes:
    """A normal information frame carrying `data` (PD0..PDn) behind `tfi`."""
    body = bytes([tfi]) + data
    if len(body) > MAX_NORMAL_BODY:
        raise ValueError(f"{len(body)} bytes need an extended frame, which this driver does not use")
    return (b"\x00" + START_CODE + bytes([len(body), -len(body) & 0xFF]) + body
            + bytes([-sum(body) & 0xFF, 0x00]))


def command_frame(command: Command, params: bytes = b"") -> bytes:
    return encode_frame(HOST_TO_READER, bytes([command]) + params)


def reply_frame(command: Command, params: bytes = b"") -> bytes:
    return encode_frame(READER_TO_HOST, bytes([command.reply_code]) + params)


_REFUSED = 0  # FrameReader._frame_size: a frame we will not decode


class FrameReader:
    """Incremental decoder for one direction: `feed(bytes)` returns the frames completed so far.

    Zero bytes between frames are pre/postambles; anything else before a start code is line
    noise (logged). A frame with a bad DCS, an unexpected TFI or an extended length is rejected
    with a logged reason and comes out as a REJECTED frame, in order, so the driver can ask for
    it again; a start code with a bad LCS is noise. Decoding resumes just after the start code.
    The first problem is logged at WARNING, the next ones at DEBUG until a frame arrives clean,
    so a noisy line does not flood the log at every poll.
    """

    def __init__(self, expected_tfi: int, source: str) -> None:
        self.expected_tfi = expected_tfi
        self.source = source
        self.rejected = 0
        self._buffer = bytearray()
        self._troubled = False  # a problem was logged and no clean frame came since
        self._problem_before_frame = False

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame (non-zero after silence = a truncated frame)."""
        return len(self._buffer) if self._buffer.startswith(START_CODE) else 0

    def clear(self) -> None:
        self._buffer.clear()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer.extend(data)
        frames: list[Frame] = []
        while True:
            start = self._buffer.find(START_CODE)
            if start < 0:  # keep a last 00: it may begin a start code
                self._skip(len(self._buffer) - (1 if self._buffer.endswith(b"\x00") else 0))
                return frames
            self._skip(start)
            if len(self._buffer) < 4:
                return frames
            size = self._frame_size()
            if size is None:  # not a frame after all: look for the next start code
                continue
            if size == _REFUSED:
                frames.append(Frame(FrameKind.REJECTED))
                continue
            if len(self._buffer) < size:
                return frames
            frame = self._take(size)
            if frame.kind is not FrameKind.REJECTED:
                self._troubled = self._troubled and self._problem_before_frame
                self._problem_before_frame = False
            frames.append(frame)

    def _frame_size(self) -> int | None:
        """Bytes from the start code to the DCS of the frame at the buffer's start; None for a
        bad LCS (noise), _REFUSED for an extended frame (both logged)."""
        length, lcs = self._buffer[2], self._buffer[3]
        if (length, lcs) in ((0x00, 0xFF), (0xFF, 0x00)):
            return 4  # ACK, NACK
        if (length, lcs) == (0xFF, 0xFF):
            self._reject("extended information frame (LEN=LCS=FF) is not supported")
            return _REFUSED
        if (length + lcs) & 0xFF or length == 0:
            self._reject(f"bad length checksum: LEN {length:02X}, LCS {lcs:02X}")
            return None
        return 4 + length + 1

    def _take(self, size: int) -> Frame:
        """Consume the complete frame of `size` bytes at the buffer's start."""
        frame = bytes(self._buffer[:size])
        if size == 4:
            del self._buffer[:size]
            return Frame(FrameKind.ACK if frame[2] == 0 else FrameKind.NACK)
        body, dcs = frame[4:-1], frame[-1]
        if (sum(body) + dcs) & 0xFF:
            self._reject(f"bad data checksum {dcs:02X} for {body.hex(' ')}")
            return Frame(FrameKind.REJECTED)
        del self._buffer[:size]
        if body == bytes([ERROR_TFI]):
            return Frame(FrameKind.ERROR)
        if body[0] != self.expected_tfi:
            self.rejected += 1
            self._problem(f"frame rejected: unexpected TFI {body[0]:02X} (expected {self.expected_tfi:02X})")
            return Frame(FrameKind.REJECTED)
        return Frame(FrameKind.INFORMATION, body[1:])

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        self._problem(f"frame rejected: {reason}")
        del self._buffer[:len(START_CODE)]  # resync at the next start code

    def _skip(self, count: int) -> None:
        noise = len(self._buffer[:count].replace(b"\x00", b""))
        if noise:
            self._problem(f"skipped {noise} bytes of line noise before a frame")
        del self._buffer[:count]

    def _problem(self, what: str) -> None:
        (log.debug if self._troubled else log.warning)("%s: PN532 %s", self.source, what)
        self._troubled = self._problem_before_frame = True


@dataclass(frozen=True)
class FirmwareVersion:
    ic: int
    version: int
    revision: int
    support: int  # bit 0 ISO 14443A, bit 1 ISO 14443B, bit 2 ISO 18092

    def __str__(self) -> str:
        return f"PN5{self.ic:02X} firmware {self.version}.{self.revision} (support {self.support:02X})"


@dataclass(frozen=True)
class Target:
    number: int  # Tg, what InRelease names
    sens_res: int  # ATQA
    sel_res: int  # SAK
    uid: bytes

    @property
    def id_tag(self) -> str:
        """OCPP idTag: upper-case hex of the UID bytes in reader order."""
        return self.uid.hex().upper()


def parse_target(params: bytes, source: str) -> Target | None:
    """InListPassiveTarget's answer (after 4B): the first target, or None when none is there."""
    if not params or params[0] == 0:
        return None
    if len(params) < 6:
        raise Pn532Error(source, f"InListPassiveTarget answer too short: {params.hex(' ')}")
    uid_length = params[5]
    uid = params[6:6 + uid_length]
    if uid_length not in UID_LENGTHS or len(uid) != uid_length:
        raise Pn532Error(source, f"UID of {uid_length} bytes in {params.hex(' ')} "
                                 f"(ISO 14443 UIDs have {UID_LENGTHS} bytes)")
    return Target(params[1], int.from_bytes(params[2:4], "big"), params[4], uid)


def gpio_levels(pin: int, high: bool) -> bytes:
    """WriteGPIO's P3 and P7 bytes driving `pin` (e.g. 30 = P30); the other port is unchanged."""
    if pin not in BEEP_PINS:
        raise ValueError(f"P{pin} is not a free PN532 GPIO (free: {BEEP_PINS})")
    port, bit = divmod(pin, 10)
    level = (1 << bit) if high else 0
    if port == 3:
        return bytes([GPIO_VALIDATE | P3_KEEP_HIGH | level, 0x00])
    return bytes([0x00, GPIO_VALIDATE | level])


Pn532Port = SerialPort  # the PN532 is commanded: written as well as read


class Pn532:
    """One PN532 on one serial port; one command at a time."""

    def __init__(self, port: Pn532Port, *, ack_timeout_s: float = ACK_TIMEOUT_S,
                 reply_timeout_s: float = REPLY_TIMEOUT_S) -> None:
        self.port = port
        self.ack_timeout_s = ack_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self._reader = FrameReader(READER_TO_HOST, port.path)
        self._frames: deque[Frame] = deque()

    async def initialise(self) -> FirmwareVersion:
        """Wake the reader, configure it for polling and say which reader it is."""
        self.port.write(WAKE_UP)
        await self.call(Command.SAM_CONFIGURATION, SAM_NORMAL_MODE)
        await self.call(Command.RF_CONFIGURATION, bytes([RF_MAX_RETRIES_ITEM]) + RF_MAX_RETRIES)
        answer = await self.call(Command.GET_FIRMWARE_VERSION)
        if len(answer) != 4:
            raise Pn532Error(self.port.path, f"GetFirmwareVersion answer is {answer.hex(' ')}")
        firmware = FirmwareVersion(*answer)
        if firmware.ic != PN532_IC:
            raise Pn532Error(self.port.path, f"wrong device answering: IC {firmware.ic:02X} is not a PN532")
        return firmware

    async def list_target(self) -> Target | None:
        """The ISO 14443A card on the reader (not one in standby), or None."""
        answer = await self.call(Command.IN_LIST_PASSIVE_TARGET, ONE_TARGET_106_KBPS_TYPE_A)
        return parse_target(answer, self.port.path)

    async def release(self, target: Target) -> None:
        """InRelease: the card goes to standby and is not listed again until it comes back."""
        status = await self.call(Command.IN_RELEASE, bytes([target.number]))
        if status[:1] != b"\x00":
            raise Pn532Error(self.port.path, f"InRelease of target {target.number} failed: "
                                             f"status {status.hex(' ') or 'missing'}")

    async def pulse_gpio(self, pin: int, seconds: float) -> None:
        """Drive `pin` high for `seconds` (a buzzer on it beeps), then low again."""
        await self.call(Command.WRITE_GPIO, gpio_levels(pin, high=True))
        try:
            await asyncio.sleep(seconds)
        finally:
            await self.call(Command.WRITE_GPIO, gpio_levels(pin, high=False))

    async def call(self, command: Command, params: bytes = b"") -> bytes:
        """Send one command; the answer's parameters (after the reply code), or Pn532Error."""
        self._reader.clear()
        self._frames.clear()
        self.port.discard_input()
        self.port.write(command_frame(command, params))
        try:
            ack = await self._receive(self.ack_timeout_s, f"ACK to {command.name}")
            if ack.kind is not FrameKind.ACK:
                raise Pn532Error(self.port.path, f"no ACK to {command.name}: got {ack.kind} first")
            return self._answer(command, await self._receive_answer(command))
        except Pn532Error:
            self.port.write(ACK_FRAME)  # abort whatever the reader is still doing
            raise

    async def _receive_answer(self, command: Command) -> Frame:
        """The answer frame; a corrupted one is asked for again once (NACK)."""
        answer = await self._receive(self.reply_timeout_s, f"answer to {command.name}")
        if answer.kind is not FrameKind.REJECTED:
            return answer
        log.info("%s: asking the PN532 to repeat its answer to %s", self.port.path, command.name)
        self.port.write(NACK_FRAME)
        return await self._receive(self.reply_timeout_s, f"repeated answer to {command.name}")

    def _answer(self, command: Command, frame: Frame) -> bytes:
        if frame.kind is FrameKind.ERROR:
            raise Pn532Error(self.port.path, f"error frame (syntax error) in answer to {command.name}")
        if frame.kind is FrameKind.REJECTED:
            raise Pn532Error(self.port.path, f"answer to {command.name} corrupted twice (see above)")
        if frame.kind is not FrameKind.INFORMATION or not frame.data:
            raise Pn532Error(self.port.path, f"expected the answer to {command.name}, got {frame.kind}")
        if frame.data[0] != command.reply_code:
            raise Pn532Error(self.port.path, f"answer code {frame.data[0]:02X} does not match "
                                             f"{command.name} (expected {command.reply_code:02X})")
        return frame.data[1:]

    async def _receive(self, timeout_s: float, what: str) -> Frame:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self._frames:
            try:
                data = await asyncio.wait_for(self.port.read(), max(deadline - loop.time(), 0))
            except TimeoutError:
                raise self._silence(what, timeout_s) from None
            self._frames.extend(self._reader.feed(data))
        return self._frames.popleft()

    def _silence(self, what: str, timeout_s: float) -> Pn532Error:
        pending = self._reader.pending
        self._reader.clear()
        if pending:
            return Pn532Error(self.port.path, f"truncated frame ({pending} bytes, then silence) "
                                              f"waiting for the {what}")
        return Pn532Error(self.port.path, f"no {what} within {timeout_s * 1000:.0f} ms")
