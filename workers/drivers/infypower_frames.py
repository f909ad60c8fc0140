"""Infypower V1.13 CAN protocol for DC power modules: frame ids and payloads (pure, no I/O).

Reference: reference/hardware.md §3.2 (EVerest InfyPower driver, CanPackets.*). Every frame is
CAN 2.0B with a 29-bit id `[28:26] error code | [25:22] device no | [21:16] command |
[15:8] destination | [7:0] source` and an 8-byte big-endian payload. The controller (default
address 0xF0) asks, the module addressed answers with destination and source swapped; a
non-zero error code in the answer's id means the module refused the request.

Both sides use this module: the driver (workers/drivers/infypower.py) and the simulated
modules (workers/sim/power_modules.py), so a frame the driver encodes is one the simulator
decodes with the same code, and the worked bytes in tests/drivers/test_infypower.py pin both.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

CONTROLLER_ADDRESS = 0xF0
PAYLOAD_LEN = 8
MAX_ADDRESS = 0xFF
_U32_MAX = 0xFFFF_FFFF


class ProtocolError(ValueError):
    """A frame or payload that does not follow the protocol (the message says what is wrong)."""


class DeviceNo(IntEnum):
    SINGLE_MODULE = 0x0A
    GROUP = 0x0B


class Command(IntEnum):
    MODULE_COUNT = 0x02
    READ_OUTPUT = 0x03  # float32 V, float32 A
    STATUS = 0x04
    CAPABILITIES = 0x0A
    ON_OFF = 0x1A
    SET_OUTPUT = 0x1C  # uint32 mV, uint32 mA


class ErrorCode(IntEnum):
    """Bits 28:26 of an answer's id. Only NORMAL is confirmed by the reference; the others
    are the Infypower manual's names as community drivers quote them (~)."""

    NORMAL = 0x00
    COMMAND_INVALID = 0x02
    DATA_INVALID = 0x03
    STARTING = 0x07


class StatusFlag(IntFlag):
    """Command 0x04: payload bytes 5..7 read as one big-endian 24-bit word (byte 7 = bits 0..7)."""

    OUTPUT_SHORT_CIRCUIT = 1 << 0
    SLEEPING = 1 << 4
    DISCHARGE_ABNORMAL = 1 << 5
    DC_SIDE_OFF = 1 << 8
    FAULT = 1 << 9
    PROTECTION = 1 << 10
    FAN_FAULT = 1 << 11
    OVER_TEMPERATURE = 1 << 12
    OUTPUT_OVER_VOLTAGE = 1 << 13
    WALK_IN = 1 << 14
    COMM_INTERRUPT = 1 << 15
    POWER_LIMIT = 1 << 16
    ID_REPEAT = 1 << 17
    LOAD_SHARING = 1 << 18
    INPUT_PHASE_LOST = 1 << 19
    INPUT_UNBALANCED = 1 << 20
    INPUT_UNDER_VOLTAGE = 1 << 21
    INPUT_OVER_VOLTAGE = 1 << 22
    PFC_SIDE_OFF = 1 << 23


# Operating states, not faults: output switched off, sleeping, soft start, derating.
_NOT_ALARMS = (StatusFlag.SLEEPING | StatusFlag.DC_SIDE_OFF | StatusFlag.WALK_IN
               | StatusFlag.POWER_LIMIT | StatusFlag.PFC_SIDE_OFF)
_KNOWN_FLAGS = sum(flag.value for flag in StatusFlag)  # reserved bits are dropped on decode


def alarms(status: StatusFlag) -> StatusFlag:
    """The flags of `status` that are faults or alarms (what the station reports as a fault)."""
    return status & ~_NOT_ALARMS


def fault_text(status: StatusFlag) -> str | None:
    """Short fault summary for the device-status contract ('over_temperature,fan_fault'), or None."""
    active = alarms(status)
    return ",".join(flag.name.lower() for flag in active if flag.name) or None


@dataclass(frozen=True)
class FrameId:
    command: int
    destination: int
    source: int
    device: DeviceNo = DeviceNo.SINGLE_MODULE
    error: int = ErrorCode.NORMAL

    def encode(self) -> int:
        for name, value, top in (("error", self.error, 0x07), ("device", self.device, 0x0F),
                                 ("command", self.command, 0x3F), ("destination", self.destination, 0xFF),
                                 ("source", self.source, 0xFF)):
            if not 0 <= value <= top:
                raise ProtocolError(f"{name} 0x{value:X} does not fit its field (max 0x{top:X})")
        return (self.error << 26 | self.device << 22 | self.command << 16
                | self.destination << 8 | self.source)

    @classmethod
    def decode(cls, arbitration_id: int) -> FrameId:
        if not 0 <= arbitration_id <= 0x1FFF_FFFF:
            raise ProtocolError(f"0x{arbitration_id:X} is not a 29-bit CAN id")
        device = (arbitration_id >> 22) & 0x0F
        if device not in DeviceNo._value2member_map_:
            raise ProtocolError(f"id 0x{arbitration_id:08X}: unknown device number 0x{device:X}")
        return cls(command=(arbitration_id >> 16) & 0x3F, destination=(arbitration_id >> 8) & 0xFF,
                   source=arbitration_id & 0xFF, device=DeviceNo(device),
                   error=(arbitration_id >> 26) & 0x07)

    def answer(self, error: int = ErrorCode.NORMAL) -> FrameId:
        """The id of the answer to this request: destination and source swapped."""
        return FrameId(self.command, self.source, self.destination, self.device, error)


@dataclass(frozen=True)
class Capabilities:
    """Command 0x0A: u16 Vmax (V), u16 Vmin (V), u16 Imax (0.1 A), u16 rated power (10 W)."""

    max_voltage_v: float
    min_voltage_v: float
    max_current_a: float
    rated_power_w: float


@dataclass(frozen=True)
class Output:
    """Command 0x03: what the module measures on its output."""

    voltage_v: float
    current_a: float


def check_payload(data: bytes) -> bytes:
    if len(data) != PAYLOAD_LEN:
        raise ProtocolError(f"payload must be {PAYLOAD_LEN} bytes, got {len(data)}: {data.hex()}")
    return bytes(data)


def request_payload() -> bytes:
    """A read request (0x02, 0x03, 0x04, 0x0A) carries no data: eight zero bytes."""
    return bytes(PAYLOAD_LEN)


# --- set output (0x1C) -------------------------------------------------------------------

def encode_set_output(voltage_mv: int, current_ma: int) -> bytes:
    for name, value in (("voltage_mv", voltage_mv), ("current_ma", current_ma)):
        if not 0 <= value <= _U32_MAX:
            raise ProtocolError(f"{name} {value} is outside 0..{_U32_MAX}")
    return struct.pack(">II", voltage_mv, current_ma)


def decode_set_output(data: bytes) -> tuple[int, int]:
    """(voltage mV, current mA)."""
    voltage_mv, current_ma = struct.unpack(">II", check_payload(data))
    return voltage_mv, current_ma


# --- on/off (0x1A) -----------------------------------------------------------------------

_ON, _OFF = 0x00, 0x01


def encode_on_off(on: bool) -> bytes:
    return bytes([_ON if on else _OFF]) + bytes(PAYLOAD_LEN - 1)


def decode_on_off(data: bytes) -> bool:
    switch = check_payload(data)[0]
    if switch not in (_ON, _OFF):
        raise ProtocolError(f"on/off byte must be 0x00 (on) or 0x01 (off), got 0x{switch:02X}")
    return switch == _ON


# --- read output (0x03) ------------------------------------------------------------------

def encode_output(output: Output) -> bytes:
    return struct.pack(">ff", output.voltage_v, output.current_a)


def decode_output(data: bytes) -> Output:
    voltage_v, current_a = struct.unpack(">ff", check_payload(data))
    for name, value in (("voltage", voltage_v), ("current", current_a)):
        if not math.isfinite(value) or value < 0:
            raise ProtocolError(f"implausible output {name} {value!r} in {data.hex()}")
    return Output(voltage_v, current_a)


# --- status (0x04) -----------------------------------------------------------------------

def encode_status(status: StatusFlag) -> bytes:
    return bytes(5) + int(status).to_bytes(3, "big")


def decode_status(data: bytes) -> StatusFlag:
    word = int.from_bytes(check_payload(data)[5:8], "big")
    return StatusFlag(word & _KNOWN_FLAGS)


# --- capabilities (0x0A) -----------------------------------------------------------------

def encode_capabilities(caps: Capabilities) -> bytes:
    words = (round(caps.max_voltage_v), round(caps.min_voltage_v), round(caps.max_current_a * 10),
             round(caps.rated_power_w / 10))
    if not all(0 <= word <= 0xFFFF for word in words):
        raise ProtocolError(f"capabilities do not fit the 16-bit fields: {caps}")
    return struct.pack(">HHHH", *words)


def decode_capabilities(data: bytes) -> Capabilities:
    max_v, min_v, max_a_tenths, power_tens_w = struct.unpack(">HHHH", check_payload(data))
    if min_v > max_v:
        raise ProtocolError(f"capabilities with Vmin {min_v} V above Vmax {max_v} V")
    return Capabilities(float(max_v), float(min_v), max_a_tenths / 10, power_tens_w * 10.0)


# --- module count (0x02) -----------------------------------------------------------------

def encode_module_count(count: int) -> bytes:
    if not 0 <= count <= 0xFF:
        raise ProtocolError(f"module count {count} does not fit one byte")
    return bytes([0, 0, count]) + bytes(PAYLOAD_LEN - 3)


def decode_module_count(data: bytes) -> int:
    return check_payload(data)[2]


def device_name(position: int) -> str:
    """The name of the module at 0-based `position` in the config's address list: 'pm1'..'pmN'
    (the device-status name and the simulator's `sim fault pm2 ...` name)."""
    return f"pm{position + 1}"
