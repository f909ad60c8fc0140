"""Phoenix Contact EV-CC-AC1-M3 (EV Charge Control Basic) over Modbus RTU, for a Type 2 connector.

Public map (manual 106377_en_04 table 9-2, evcc's phoenix-ev-ser; reference/hardware.md §4.1):
the controller speaks amps, the station speaks watts, so power limits become whole amps per
phase from the configured phases and voltage (rounded down: never more than allocated).
Below 6 A no PWM may be offered, so such a limit switches the PWM off (coil 20000 = 0).

Lease: the public map (table 9-2: configuration 4000..4013, coils 20000..21000, holding
22000/23000) has no lease and no Modbus communication timeout, so `lease_s` is accepted and
ignored: the PWM keeps its last enable and current when the station falls silent. What makes
a dead station safe on this connector is the IO module's host watchdog, which drops the AC
contactor's coil (station.toml `[io_module] watchdog_s`); the EV sees the supply go.

Open question kept as an option: the serial variant puts the IEC 61851 state letter of input
24000 in the high byte (evcc's serial driver), the Ethernet map in the low byte; the other byte
holds '1'/'2' (PWM off/on). 24025 is read with FC04 like 24000 (the manual lists both as
read-only volatile registers). Its bit 16 (EV-RCM self-test) cannot exist in a 16-bit register
and is not decoded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from enum import IntEnum
from typing import Literal, TypeVar

from bus.enums import Standard
from workers.common.station_config import ConnectorConfig
from workers.drivers.controllers.iec61851 import PilotState, Type2Memory, type2_state
from workers.drivers.controllers.interface import (
    NO_ERRORS,
    ControllerError,
    ControllerSnapshot,
    EvDemand,
    EvState,
    OutputLimits,
    SessionPhase,
    UnsupportedCommand,
)
from workers.drivers.errors import DeviceError
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import FunctionCode

MODEL = "phoenix_ev_cc"
MIN_CURRENT_A = 6  # register 22000 range
MAX_CURRENT_A = 63
StateByte = Literal["high", "low"]
T = TypeVar("T")


class Coil(IntEnum):
    ENABLE_CHARGING = 20000  # PWM on (with register 4000 = 3, "enable via Modbus")
    AVAILABLE = 20001  # 0 = station unavailable, state F


class HoldingRegister(IntEnum):
    MAX_CURRENT_A = 22000  # 6..63 A


class InputRegister(IntEnum):
    FIRMWARE_LETTER_MAJOR = 1031  # ASCII letter (MSB) + major version (LSB)
    FIRMWARE_VERSION = 1032
    FIRMWARE_MINOR = 1033
    STATE = 24000  # two ASCII characters, e.g. "B2"
    CABLE_CURRENT_A = 24001  # PP coding: 13/20/32/63 A, 0 = PP open, 0xFFFF = PP short
    PWM_DUTY_PCT = 24002
    PWM_CURRENT_A = 24003
    ERROR_BITS = 24025


STATUS_START, STATUS_COUNT = InputRegister.STATE, 4
FIRMWARE_START, FIRMWARE_COUNT = InputRegister.FIRMWARE_LETTER_MAJOR, 3
PP_SHORT = 0xFFFF

ERROR_BITS: dict[int, ControllerError] = {
    2: ControllerError.PROXIMITY,  # 13 A cable rejected
    3: ControllerError.PROXIMITY,  # invalid PP value
    4: ControllerError.CONTROL_PILOT,  # invalid CP value
    5: ControllerError.UNAVAILABLE,  # state F: station not available
    6: ControllerError.LOCK,  # locking
    7: ControllerError.LOCK,  # unlocking
    8: ControllerError.LOCK,  # LD unavailable during locking
    11: ControllerError.EV_FAULT,  # state D, vehicle rejected
    12: ControllerError.CONTACTOR,  # charging contactor error
    13: ControllerError.DIODE,  # no diode in the EV's CP circuit
    15: ControllerError.RESIDUAL_CURRENT,  # EV-RCM tripped
}
_PWM_DIGITS = {ord("1"): False, ord("2"): True}


def decode_state(word: int, byte: StateByte) -> PilotState:
    """Register 24000 -> pilot state; ValueError if the chosen byte holds no state letter."""
    letter, other = (word >> 8, word & 0xFF) if byte == "high" else (word & 0xFF, word >> 8)
    if not ord("A") <= letter <= ord("F"):
        raise ValueError(f"state register {word:#06x} has no IEC 61851 letter in its {byte} byte")
    return PilotState(chr(letter), _PWM_DIGITS.get(other))


def encode_state(pilot: PilotState, byte: StateByte) -> int:
    """The controller's side: letter in the chosen byte, '1'/'2'/'0' in the other."""
    digit = ord("0") if pilot.pwm_on is None else ord("2" if pilot.pwm_on else "1")
    letter = ord(pilot.letter)
    return (letter << 8 | digit) if byte == "high" else (digit << 8 | letter)


def decode_errors(word: int) -> ControllerError:
    flags = NO_ERRORS
    for bit, flag in ERROR_BITS.items():
        if word >> bit & 1:
            flags |= flag
    return flags


def encode_errors(flags: ControllerError) -> int:
    """The controller's side: each flag on its first Phoenix bit; flags Phoenix has no bit for
    set nothing."""
    word = 0
    for flag in flags:
        bit = next((bit for bit, mapped in ERROR_BITS.items() if mapped is flag), None)
        if bit is not None:
            word |= 1 << bit
    return word


def decode_cable_current(word: int) -> float | None:
    """PP coding of the cable: amps, None when open or shorted (the error bits say which)."""
    if word in (0, PP_SHORT):
        return None
    if word > MAX_CURRENT_A:
        raise ValueError(f"cable current {word} A is not 0, 13..63 or 0xFFFF")
    return float(word)


def decode_firmware(words: list[int]) -> str:
    """1031..1033 -> e.g. 'V1.2.5' (letter, major, version, minor)."""
    if len(words) != FIRMWARE_COUNT:
        raise ValueError(f"expected {FIRMWARE_COUNT} firmware registers, got {len(words)}")
    letter_major, version, minor = words
    letter = chr(letter_major >> 8) if 0x20 < letter_major >> 8 < 0x7F else ""
    return f"{letter}{letter_major & 0xFF}.{version}.{minor}"


def amps_for(limits: OutputLimits, *, phases: int, voltage_v: float) -> int:
    """Whole amps per phase within every limit (voltage limits do not apply to AC)."""
    amps = float(MAX_CURRENT_A)
    if limits.current_a is not None:
        amps = min(amps, limits.current_a)
    if limits.power_w is not None:
        amps = min(amps, limits.power_w / (phases * voltage_v))
    return math.floor(round(amps, 6))


class PhoenixEvCcController:
    """Enable and the current limit are written together on every command (both are volatile
    in the device, so a restarted controller gets them back with the next cycle)."""

    model = MODEL

    def __init__(self, hub: ModbusHub, device_id: int, *, phases: int = 3, voltage_v: float = 230.0,
                 state_byte: StateByte = "high") -> None:
        self.hub = hub
        self.device_id = device_id
        self.phases = phases
        self.voltage_v = voltage_v
        self.state_byte = state_byte
        self._enabled = False
        self._limits = OutputLimits(power_w=0.0)
        self._memory = Type2Memory()
        self._firmware: str | None = None

    @classmethod
    def for_connector(cls, hub: ModbusHub, connector: ConnectorConfig) -> PhoenixEvCcController:
        options = connector.controller.phoenix_options
        return cls(hub, connector.controller.device_id, phases=options.phases,
                   voltage_v=options.voltage_v, state_byte=options.state_byte)

    async def poll(self) -> ControllerSnapshot:
        if self._firmware is None:
            await self.read_firmware_version()
        status = await self._read(STATUS_START, STATUS_COUNT)
        error_word = (await self._read(InputRegister.ERROR_BITS, 1))[0]
        pilot = self._decoded(lambda: decode_state(status[0], self.state_byte))
        cable_a = self._decoded(lambda: decode_cable_current(status[1]))
        self._memory.observe(pilot, time.monotonic())
        ev_state, phase = type2_state(pilot, self._memory)
        errors = decode_errors(error_word)
        if errors:
            ev_state, phase = EvState.F, SessionPhase.FAULT
        plugged = pilot.letter != "A"
        max_current = cable_a or float(MAX_CURRENT_A)
        asks_w = max_current * self.phases * self.voltage_v if ev_state is EvState.C else 0.0
        return ControllerSnapshot(
            ev_state=ev_state, soc=None, target_soc=None, ev_max_power_w=asks_w,
            error_code=error_word, phase=phase, standard=Standard.TYPE2 if plugged else None,
            demand=EvDemand(max_current_a=max_current if plugged else None),
            errors=errors, firmware_version=self._firmware,
        )

    # `lease_s` is a no-op on this model: it has no lease register (module docstring).

    async def set_output(self, enabled: bool, power_limit_w: float, *, lease_s: float | None = None) -> None:
        limits = replace(self._limits, power_w=power_limit_w)  # validates the value
        self._enabled, self._limits = enabled, limits
        await self._apply()

    async def set_enabled(self, enabled: bool, *, lease_s: float | None = None) -> None:
        self._enabled = enabled
        await self._apply()

    async def set_limits(self, limits: OutputLimits, *, lease_s: float | None = None) -> None:
        self._limits = limits
        await self._apply()

    async def read_firmware_version(self) -> str:
        words = await self._read(FIRMWARE_START, FIRMWARE_COUNT)
        self._firmware = self._decoded(lambda: decode_firmware(words))
        return self._firmware

    async def enter_bootloader(self) -> None:
        raise UnsupportedCommand(f"{MODEL} has no bootloader entry over Modbus "
                                 "(its firmware is updated with the vendor's tool)")

    async def _apply(self) -> None:
        amps = amps_for(self._limits, phases=self.phases, voltage_v=self.voltage_v)
        pwm_on = self._enabled and amps >= MIN_CURRENT_A
        if pwm_on:
            await self.hub.write_registers(self.device_id, HoldingRegister.MAX_CURRENT_A, [amps])
        await self.hub.write_coil(self.device_id, Coil.ENABLE_CHARGING, pwm_on)

    async def _read(self, address: int, count: int) -> list[int]:
        return await self.hub.read_registers(self.device_id, FunctionCode.READ_INPUT_REGISTERS,
                                             address, count)

    def _decoded(self, decode: Callable[[], T]) -> T:
        try:
            return decode()
        except ValueError as error:
            raise DeviceError(self.hub.device_name(self.device_id),
                              f"bad controller data: {error}") from error
