"""The simulated PN532 reader (HSU) on the master side of a pty linked at `[rfid].port`.

It answers what the rfid service's driver sends, byte for byte as the PN532 user manual
frames it (workers/drivers/pn532.py): it sleeps until the HSU wake-up (`55 55 00…`), then ACKs
every well-formed command and answers it; a frame with a bad checksum gets no answer at all,
NACK repeats the last answer, and an unknown command gets the error frame.

Commands: GetFirmwareVersion (a PN532 v1.6), SAMConfiguration, RFConfiguration,
InListPassiveTarget (the card in the field, unless it is in standby), InRelease and InDeselect
(the listed card goes to standby: HALT; it is listed again only after it left the field and
came back), WriteGPIO (pin levels; a pin driven high then low again is recorded in `beeps`,
the buzzer a station wires to a GPIO).

Faults: "bad_checksum" (answers carry a wrong DCS), "garbage" (line noise before each ACK and
answer), "no_ack" (answers come without their ACK). Offline = silent; coming back online is a
power-up: the reader sleeps again until woken.
"""

from __future__ import annotations

import logging
import string
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from workers.drivers.pn532 import (
    ACK_FRAME,
    BEEP_PINS,
    ERROR_FRAME,
    GPIO_VALIDATE,
    HOST_TO_READER,
    PN532_IC,
    UID_LENGTHS,
    Command,
    Frame,
    FrameKind,
    FrameReader,
    reply_frame,
)
from workers.sim.faults import FaultState, HasFaults
from workers.sim.rfid_port import LINE_NOISE, SWIPE_HOLD_S, HoldTimer, SerialLink

log = logging.getLogger(__name__)

WAKE_UP_BYTE = 0x55
FIRMWARE = bytes([PN532_IC, 0x01, 0x06, 0x07])  # IC, version 1.6, supports 14443A/B and 18092
COMMANDS_KEPT = 1000  # the latest commands answered (the sim polls for days)
TARGET_NUMBER = 0x01
STATUS_OK = 0x00
STATUS_WRONG_CONTEXT = 0x27  # e.g. releasing a target that is not listed
# ATQA and SAK by UID size: MIFARE Classic 1K, Ultralight/NTAG, an ISO 14443-4 card
CARD_TYPES = {4: (b"\x00\x04", 0x08), 7: (b"\x00\x44", 0x00), 10: (b"\x00\x84", 0x20)}


@dataclass(frozen=True)
class Beep:
    pin: int  # 30 = P30 ... 72 = P72
    duration_s: float


def uid_bytes(uid: str) -> bytes:
    """The UID bytes of `uid` (8, 14 or 20 hex digits), or ValueError saying why not."""
    if len(uid) % 2 or len(uid) // 2 not in UID_LENGTHS or not all(c in string.hexdigits for c in uid):
        raise ValueError(f"an ISO 14443 UID is {', '.join(str(2 * n) for n in UID_LENGTHS)} "
                         f"hex digits, got {uid!r}")
    return bytes.fromhex(uid)


class SimulatedPn532(HasFaults):
    name = "rfid"
    fault_kinds = ("bad_checksum", "garbage", "no_ack")

    def __init__(self, link: Path) -> None:
        self.link = link
        self.beeps: list[Beep] = []
        self.commands: deque[Command | int] = deque(maxlen=COMMANDS_KEPT)  # for tests
        self._line = SerialLink(link)
        self._frames = FrameReader(HOST_TO_READER, f"sim {link}")
        self._faults = FaultState(self.name, self.fault_kinds)
        self._hold = HoldTimer(self.remove)
        self._awake = False
        self._uid: bytes | None = None
        self._standby = False  # the card got InRelease/InDeselect: HALT until it leaves
        self._listed = False
        self._high_since: dict[int, float] = {}
        self._last_answer = b""

    @property
    def slave_path(self) -> str:
        return self._line.slave_path

    @property
    def card(self) -> str | None:
        return self._uid.hex().upper() if self._uid else None

    @property
    def in_standby(self) -> bool:
        return self._standby

    def open(self) -> None:
        """Plugged in: powered up, asleep until the driver wakes it."""
        self._awake = False
        self._line.open()
        self._line.watch(self._on_bytes)

    def close(self) -> None:
        self.remove()
        self._line.close()

    def present(self, uid: str, hold_s: float | None = SWIPE_HOLD_S) -> None:
        card = uid_bytes(uid)
        if card != self._uid:
            self.remove()
            self._uid = card
        self._hold.restart(hold_s)

    def remove(self) -> None:
        """The card leaves the field: it loses power, so a standby card is awake next time."""
        self._hold.cancel()
        self._uid, self._standby, self._listed = None, False, False

    def set_online(self, online: bool) -> None:
        if online and not self.online:
            self._awake, self._listed = False, False  # powered up again: asleep, nothing listed
            self._standby = False  # the field was off: the card reset too
        super().set_online(online)

    def _on_bytes(self, data: bytes) -> None:
        if not self.online:
            return
        if data[:1] == bytes([WAKE_UP_BYTE]):
            self._awake = True
            data = data.lstrip(bytes([WAKE_UP_BYTE]))
        if not self._awake:
            return
        for frame in self._frames.feed(data):
            self._on_frame(frame)

    def _on_frame(self, frame: Frame) -> None:
        if frame.kind is FrameKind.NACK:
            self._send(self._last_answer)
        elif frame.kind is FrameKind.INFORMATION and frame.data:
            if not self._faults.has("no_ack"):
                self._send(ACK_FRAME)
            self._last_answer = self._answer(frame.data[0], frame.data[1:])
            self._send(self._last_answer)
        # ACK from the host aborts a command in progress: every answer here is immediate

    def _answer(self, code: int, params: bytes) -> bytes:
        try:
            command = Command(code)
        except ValueError:
            log.warning("sim PN532: unknown command %02X: error frame", code)
            self.commands.append(code)
            return ERROR_FRAME
        self.commands.append(command)
        answer = {
            Command.GET_FIRMWARE_VERSION: lambda: FIRMWARE,
            Command.SAM_CONFIGURATION: lambda: b"",
            Command.RF_CONFIGURATION: lambda: b"",
            Command.IN_LIST_PASSIVE_TARGET: self._list_target,
            Command.IN_RELEASE: lambda: self._release(params),
            Command.IN_DESELECT: lambda: self._release(params),
            Command.WRITE_GPIO: lambda: self._write_gpio(params),
        }[command]()
        return reply_frame(command, answer)

    def _list_target(self) -> bytes:
        if self._uid is None or self._standby:
            self._listed = False
            return b"\x00"
        self._listed = True
        sens_res, sel_res = CARD_TYPES[len(self._uid)]
        return (bytes([1, TARGET_NUMBER]) + sens_res + bytes([sel_res, len(self._uid)]) + self._uid)

    def _release(self, params: bytes) -> bytes:
        target = params[0] if params else None
        if target == 0 or (target == TARGET_NUMBER and self._listed):  # 0 = every target
            self._standby = self._standby or self._listed
            self._listed = False
            return bytes([STATUS_OK])
        return bytes([STATUS_WRONG_CONTEXT])

    def _write_gpio(self, params: bytes) -> bytes:
        p3, p7 = (params + b"\x00\x00")[:2]
        now = time.monotonic()
        for pin in BEEP_PINS:
            port, bit = divmod(pin, 10)
            levels = p3 if port == 3 else p7
            if not levels & GPIO_VALIDATE:
                continue  # that port is left as it was
            high = bool(levels & (1 << bit))
            if high and pin not in self._high_since:
                self._high_since[pin] = now
            elif not high and pin in self._high_since:
                self.beeps.append(Beep(pin, now - self._high_since.pop(pin)))
        return b""

    def _send(self, frame: bytes) -> None:
        if not frame:
            return
        if self._faults.has("bad_checksum") and frame != ACK_FRAME:
            frame = frame[:-2] + bytes([(frame[-2] + 1) & 0xFF]) + frame[-1:]
        self._line.write((LINE_NOISE if self._faults.has("garbage") else b"") + frame)
