"""What each simulated Modbus device says on the wire: online or not, and its wire faults.

A pymodbus server computes every answer from the device's registers; this module decides
what of it reaches the wire, through the server's public `trace_packet` hook (called with
each outgoing frame). One `FaultState` per configured device id is its switch: `sim offline`
/ `sim fault` flip it (a fault lasts until `sim clear`), the next answer obeys it;
`fault_next` spoils only a burst of answers (a test of the hub's retry).

- RTU: an offline device, and every id nobody configured, stays silent, as an unpowered
  RS485 device does (pymodbus itself would answer exception 04 for an unknown id:
  reference/hardware.md §7.5). The wire faults corrupt the answers of one device, so a test
  sees the hub keep serving the other devices on the line.
- TCP: an offline device answers exception 0x0B ("gateway target failed to respond"), the
  answer of a Modbus TCP gateway whose RS485 device is silent, the same answer an id nobody
  configured gets (workers/sim/devices.py). No wire faults: TCP carries its own checksums.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerRTU

from workers.sim.faults import FaultState

MBAP_UNIT_ID = 6  # byte offset of the unit id in a Modbus TCP frame (MBAP header)
MBAP_LENGTH = slice(4, 6)  # bytes of the MBAP length field (unit id + PDU)
MAX_DEVICE_ID = 247
# A burst of line noise: 0xFF is never a device id, and no prefix of it parses as a frame.
LINE_NOISE = bytes([0xFF, 0xF0, 0x00, 0xFF, 0x0F, 0xFF, 0x00, 0xF8])


class WireFault(StrEnum):
    """What can go wrong with one device's answers on an RS485 line (`sim fault KIND`)."""

    CRC = "crc"  # the answer's CRC is wrong (bits flipped on the wire)
    WRONG_DEVICE = "wrong_device"  # a well-formed answer from another device id
    PARTIAL_FRAME = "partial_frame"  # the answer is cut off half-way
    GARBAGE = "garbage"  # line noise where the answer should be
    LATE_ANSWER = "late_answer"  # the answer comes after the master's timeout


RTU_FAULT_KINDS: tuple[str, ...] = tuple(WireFault)


def device_switch(name: str, *, serial: bool) -> FaultState:
    """The online flag and fault set of one configured device (what `sim list` shows)."""
    return FaultState(name, RTU_FAULT_KINDS if serial else ())


class DeviceAnswers:
    """Applies the switches of one bus's devices to the frames its server sends.

    `late_by_s` and `send_late` serve WireFault.LATE_ANSWER: the frame is held back and
    handed to `send_late` (the line's device side) that much later.
    """

    def __init__(self, switches: dict[int, FaultState], *, late_by_s: float = 0.0,
                 send_late: Callable[[bytes], None] | None = None) -> None:
        self.switches = switches
        self.late_by_s = late_by_s
        self.send_late = send_late
        self._bursts: dict[int, deque[WireFault]] = {}

    def fault_next(self, device_id: int, fault: WireFault, answers: int = 1) -> None:
        """Spoil only the next `answers` answers of one device (a burst of interference),
        on top of its switch's lasting faults."""
        self._bursts.setdefault(device_id, deque()).extend([fault] * answers)

    def trace_rtu(self, sending: bool, data: bytes) -> bytes:
        """pymodbus `trace_packet` of an RTU server: the bytes that go on the line."""
        if not sending or not data:
            return data
        switch = self.switches.get(data[0])
        if switch is None or not switch.online:
            return b""
        faults = set(switch.faults)
        burst = self._bursts.get(data[0])
        if burst:
            faults.add(burst.popleft())
        return self._with_faults(faults, data)

    def trace_tcp(self, sending: bool, data: bytes) -> bytes:
        """pymodbus `trace_packet` of a TCP server: an offline device's answer becomes 0x0B."""
        if not sending or len(data) <= MBAP_UNIT_ID + 1:
            return data
        switch = self.switches.get(data[MBAP_UNIT_ID])
        if switch is None or switch.online:
            return data
        return gateway_no_response(data)

    def _with_faults(self, faults: set[str], frame: bytes) -> bytes:
        if WireFault.WRONG_DEVICE in faults:
            frame = rtu_frame(frame[0] % MAX_DEVICE_ID + 1, frame[1:-2])
        if WireFault.CRC in faults:
            frame = frame[:-2] + bytes(byte ^ 0xFF for byte in frame[-2:])
        if WireFault.PARTIAL_FRAME in faults:
            frame = frame[:len(frame) // 2]
        if WireFault.GARBAGE in faults:
            frame = LINE_NOISE
        if WireFault.LATE_ANSWER in faults and self.send_late is not None:
            asyncio.get_running_loop().call_later(self.late_by_s, self.send_late, frame)
            return b""
        return frame


def rtu_frame(device_id: int, pdu: bytes) -> bytes:
    """An RTU frame: device id, PDU, CRC-16/MODBUS low byte first (reference/hardware.md §0)."""
    body = bytes([device_id]) + pdu
    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


def gateway_no_response(frame: bytes) -> bytes:
    """The exception-0x0B answer to the request a TCP `frame` answers (same MBAP ids)."""
    function_code = frame[MBAP_UNIT_ID + 1] & 0x7F
    pdu = bytes([function_code | 0x80, ExcCodes.GATEWAY_NO_RESPONSE])
    length = (1 + len(pdu)).to_bytes(2, "big")
    return frame[:MBAP_LENGTH.start] + length + frame[MBAP_UNIT_ID:MBAP_UNIT_ID + 1] + pdu
