"""Insulation monitor: Bender isoCHA425HV on Modbus (reference/hardware.md §2.4).

The device reports each measurement as a 4-register channel (the layout EVerest's
Bender_isoCHA425HV driver decodes): float32 value, high word first; a status word whose high
byte carries the alarm (bits 0-2) and test (bits 6-7) state and whose low byte the unit
(bits 0-4) and validity (bits 6-7); then a channel-description code. R_F (insulation
resistance, Ohm) is the channel at 1000 and U_n (voltage, V) the one at 1008; channels are
contiguous, so one FC03 read of 1000..1011 fetches both (1004..1007, the channel between,
is read along and ignored). The map does allow a self-test: FC16 0x5445 ("TE") to register 8005
starts one; it shows as a test state until done, and a device error afterwards means it failed
(EVerest gives it 30 s).

An insulation fault is a resistance below `alarm_threshold_ohm` (100 kOhm by default, EVerest's
CableCheck limit) or the device's own alarm. A value the device marks invalid (e.g. during
its self-test) is None, never a number; a channel in the wrong unit is a wrong device or map
and becomes a DeviceError, as does a value that is not a finite number.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from workers.common.station_config import ImdConfig
from workers.drivers.errors import DeviceError
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import DataType, FunctionCode, RegisterValueError, decode

R_F_REGISTER = 1000
U_N_REGISTER = 1008
CHANNEL_WORDS = 4
READ_COUNT = U_N_REGISTER + CHANNEL_WORDS - R_F_REGISTER
SELF_TEST_REGISTER = 8005
SELF_TEST_COMMAND = 0x5445  # ASCII "TE"
SELF_TEST_TIMEOUT_S = 30.0
UNIT_OHM = 2
UNIT_VOLT = 4


class Alarm(StrEnum):
    NONE = "none"
    PRE_WARNING = "pre_warning"
    DEVICE_ERROR = "device_error"
    WARNING = "warning"
    ALARM = "alarm"
    RESERVED = "reserved"


class ImdTest(StrEnum):
    """Which self-test the device is running."""

    NONE = "none"
    INTERNAL = "internal"  # the device's own periodic test
    EXTERNAL = "external"  # a test the host started


class Validity(StrEnum):
    EXACT = "exact"
    TRUE_VALUE_SMALLER = "true_value_smaller"  # the real value is below the one shown
    TRUE_VALUE_BIGGER = "true_value_bigger"  # e.g. above the measuring range
    INVALID = "invalid"


class SelfTestResult(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


_ALARMS: Mapping[int, Alarm] = {0: Alarm.NONE, 1: Alarm.PRE_WARNING, 2: Alarm.DEVICE_ERROR,
                                4: Alarm.WARNING, 5: Alarm.ALARM}
_TESTS = (ImdTest.NONE, ImdTest.INTERNAL, ImdTest.EXTERNAL, ImdTest.NONE)
_VALIDITIES = (Validity.EXACT, Validity.TRUE_VALUE_SMALLER, Validity.TRUE_VALUE_BIGGER, Validity.INVALID)


@dataclass(frozen=True)
class ImdChannel:
    value: float
    alarm: Alarm
    test: ImdTest
    unit: int  # device unit code: 2 Ohm, 4 V
    validity: Validity
    description: int  # device channel-description code

    @property
    def reading(self) -> float | None:
        return None if self.validity is Validity.INVALID else self.value


@dataclass(frozen=True)
class ImdSnapshot:
    resistance_ohm: float | None  # R_F; None while the device marks it invalid
    resistance_validity: Validity
    voltage_v: float | None  # U_n
    alarm: Alarm  # of the R_F channel
    self_test: ImdTest
    insulation_fault: bool

    @property
    def device_error(self) -> bool:
        return self.alarm is Alarm.DEVICE_ERROR


def decode_channel(words: list[int]) -> ImdChannel:
    """One 4-register channel; RegisterValueError for words that cannot be one."""
    if len(words) != CHANNEL_WORDS:
        raise RegisterValueError(f"a channel is {CHANNEL_WORDS} registers, got {len(words)}")
    value = decode(words[:2], DataType.FLOAT32)
    status, unit = words[2] >> 8, words[2] & 0xFF
    alarm_bits = status & 0x07
    alarm = _ALARMS.get(alarm_bits, Alarm.RESERVED)
    if alarm is Alarm.DEVICE_ERROR and status & 0xC0:
        alarm = Alarm.RESERVED  # 2 with the test bits set is not a device error (EVerest)
    return ImdChannel(value, alarm, _TESTS[status >> 6], unit & 0x1F, _VALIDITIES[unit >> 6], words[3])


def snapshot_from_words(words: list[int], alarm_threshold_ohm: float) -> ImdSnapshot:
    """Registers 1000..1011 -> snapshot; RegisterValueError for data a real device would not send."""
    if len(words) != READ_COUNT:
        raise RegisterValueError(f"expected {READ_COUNT} registers from {R_F_REGISTER}, got {len(words)}")
    resistance = _checked(decode_channel(words[:CHANNEL_WORDS]), UNIT_OHM, "R_F")
    voltage = _checked(decode_channel(words[U_N_REGISTER - R_F_REGISTER:]), UNIT_VOLT, "U_n")
    ohm = resistance.reading
    above_shown = resistance.validity is Validity.TRUE_VALUE_BIGGER
    below = ohm is not None and ohm < alarm_threshold_ohm and not above_shown
    return ImdSnapshot(
        resistance_ohm=ohm,
        resistance_validity=resistance.validity,
        voltage_v=voltage.reading,
        alarm=resistance.alarm,
        self_test=resistance.test,
        insulation_fault=below or resistance.alarm is Alarm.ALARM,
    )


def _checked(channel: ImdChannel, unit: int, name: str) -> ImdChannel:
    if channel.validity is Validity.INVALID:
        return channel
    if channel.unit != unit:
        raise RegisterValueError(f"{name} channel has unit code {channel.unit}, expected {unit}")
    if not math.isfinite(channel.value) or channel.value < 0:
        raise RegisterValueError(f"{name} value {channel.value} is not a measurement")
    return channel


class Imd:
    """The insulation monitor; `poll()` is one FC03 request."""

    def __init__(self, hub: ModbusHub, device_id: int, *, alarm_threshold_ohm: float = 100_000.0) -> None:
        self.hub = hub
        self.device_id = device_id
        self.alarm_threshold_ohm = alarm_threshold_ohm

    @classmethod
    def from_config(cls, config: ImdConfig, hubs: Mapping[str, ModbusHub]) -> Imd:
        return cls(hubs[config.bus], config.device_id, alarm_threshold_ohm=config.alarm_threshold_kohm * 1000)

    async def poll(self) -> ImdSnapshot:
        words = await self.hub.read_registers(self.device_id, FunctionCode.READ_HOLDING_REGISTERS,
                                              R_F_REGISTER, READ_COUNT)
        try:
            return snapshot_from_words(words, self.alarm_threshold_ohm)
        except RegisterValueError as error:
            raise DeviceError(self.hub.device_name(self.device_id), f"bad IMD data: {error}") from error

    async def start_self_test(self) -> None:
        await self.hub.write_registers(self.device_id, SELF_TEST_REGISTER, [SELF_TEST_COMMAND])

    async def run_self_test(self, *, timeout_s: float = SELF_TEST_TIMEOUT_S,
                            poll_s: float = 1.0) -> SelfTestResult:
        """Start a self-test and wait until the device has run it: passed unless it then
        reports a device error; a test not seen to finish within `timeout_s` timed out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        await self.start_self_test()
        seen_running = False
        while loop.time() < deadline:
            snapshot = await self.poll()
            if snapshot.self_test is not ImdTest.NONE:
                seen_running = True
            elif seen_running:
                return SelfTestResult.FAILED if snapshot.device_error else SelfTestResult.PASSED
            await asyncio.sleep(poll_s)
        return SelfTestResult.TIMED_OUT
