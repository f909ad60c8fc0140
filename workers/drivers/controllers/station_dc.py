"""The project's own charge-controller protocol, version 2 (docs/controller-protocol.md).

The register map and its encoders/decoders are pure functions on words, shared by the driver
(decode inputs, encode commands) and the simulator (the other way round), so both ends of the
wire use one definition and the tests check it on raw words. Version 0's addresses (input
0..4, holding 0..1) keep their meaning; version 2 is version 1 plus the lease (holding 4
`lease_ds`, input 14 `lease_state`), so the driver drives version 1 controllers too, without
a lease, and a version 1 station drives a version 2 controller, which then holds no lease.

A lease is written in the same request as the command it covers (the driver caches the limits
it last wrote, so the FC16 request can reach from the command up to register 4).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import TypeVar

from bus.enums import Standard
from workers.common.station_config import ConnectorConfig
from workers.drivers.controllers.interface import (
    ControllerError,
    ControllerSnapshot,
    EvDemand,
    EvState,
    LeaseState,
    OutputLimits,
    OutputMeasurement,
    SessionPhase,
)
from workers.drivers.errors import DeviceError
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import FunctionCode

log = logging.getLogger(__name__)

MODEL = "station_dc"
PROTOCOL_VERSION = 2  # what the simulator speaks; 2 = 1 + the lease
LEASE_VERSION = 2  # the first version with a lease
SUPPORTED_VERSIONS = (1, 2)
UNKNOWN = 0xFFFF  # "unknown" / "not measured" in a value register
NO_LIMIT = 0xFFFF  # "no limit" in a limit register
POWER_UNIT_W = 100.0  # *_hw registers count 100 W steps
VOLTAGE_UNIT_V = 0.1  # *_dv registers count 0.1 V
CURRENT_UNIT_A = 0.1  # *_da registers count 0.1 A
BOOTLOADER_MAGIC = 0xB007  # written to `bootloader`: restart into the bootloader
BOOTLOADER_LEAVE = 0  # written to `bootloader` while in it: restart the application
LEASE_UNIT_S = 0.1  # `lease_ds` counts 0.1 s
MAX_LEASE_DS = 600  # 60 s: a longer lease would not protect anything
MAX_LEASE_S = 60.0
NO_LEASE = 0

T = TypeVar("T")


class InputRegister(IntEnum):
    """FC04 fast block, read by the station every poll."""

    EV_STATE = 0
    SOC_PCT = 1
    TARGET_SOC_PCT = 2
    EV_MAX_POWER_HW = 3
    ERROR_CODE = 4
    STANDARD = 5
    PHASE = 6
    ERROR_FLAGS = 7
    EV_TARGET_VOLTAGE_DV = 8
    EV_TARGET_CURRENT_DA = 9
    EV_MAX_VOLTAGE_DV = 10
    EV_MAX_CURRENT_DA = 11
    PRESENT_VOLTAGE_DV = 12
    PRESENT_CURRENT_DA = 13
    LEASE_STATE = 14  # version 2


class IdentityRegister(IntEnum):
    """FC04 slow block, read once (and after a bootloader visit)."""

    PROTOCOL_VERSION = 100
    FIRMWARE_MAJOR = 101
    FIRMWARE_MINOR = 102
    FIRMWARE_PATCH = 103
    MODE = 104  # 0 = application, 1 = bootloader


class HoldingRegister(IntEnum):
    """FC03 read / FC06, FC16 write, written by the station."""

    ENABLE = 0
    POWER_LIMIT_HW = 1
    CURRENT_LIMIT_DA = 2
    VOLTAGE_LIMIT_DV = 3
    LEASE_DS = 4  # version 2
    BOOTLOADER = 10


INPUT_COUNT = len(InputRegister)  # version 2's fast block
INPUT_COUNT_V1 = InputRegister.LEASE_STATE  # version 1's fast block ends before the lease state
IDENTITY_START, IDENTITY_COUNT = IdentityRegister.PROTOCOL_VERSION, len(IdentityRegister)
OUTPUT_COUNT = HoldingRegister.VOLTAGE_LIMIT_DV + 1  # enable + the three limits
COMMAND_COUNT = HoldingRegister.LEASE_DS + 1  # ... and the lease

EV_STATE_CODES = (EvState.A, EvState.B, EvState.C, EvState.F)
PHASE_CODES = tuple(SessionPhase)  # the enum's order is the wire order
STANDARD_CODES = (None, Standard.CCS, Standard.CHADEMO, Standard.GBT, Standard.TYPE2)
LEASE_CODES = tuple(LeaseState)  # the enum's order is the wire order


@dataclass(frozen=True)
class Identity:
    protocol_version: int
    firmware_version: str
    in_bootloader: bool


def decode_inputs(words: list[int]) -> ControllerSnapshot:
    """Fast block (version 1: 14 words, version 2: 15) -> snapshot (without firmware);
    ValueError on values outside the protocol."""
    if len(words) not in (INPUT_COUNT_V1, INPUT_COUNT):
        raise ValueError(f"expected {INPUT_COUNT_V1} or {INPUT_COUNT} input registers, got {len(words)}")
    r = InputRegister
    lease = _code(LEASE_CODES, words[r.LEASE_STATE], "lease_state") if len(words) == INPUT_COUNT else None
    return ControllerSnapshot(
        ev_state=_code(EV_STATE_CODES, words[r.EV_STATE], "ev_state"),
        soc=_percent(words[r.SOC_PCT], "soc_pct"),
        target_soc=_percent(words[r.TARGET_SOC_PCT], "target_soc_pct"),
        ev_max_power_w=words[r.EV_MAX_POWER_HW] * POWER_UNIT_W,
        error_code=words[r.ERROR_CODE],
        standard=_code(STANDARD_CODES, words[r.STANDARD], "standard"),
        phase=_code(PHASE_CODES, words[r.PHASE], "phase"),
        errors=ControllerError(words[r.ERROR_FLAGS]),
        demand=EvDemand(
            target_voltage_v=_scaled(words[r.EV_TARGET_VOLTAGE_DV], VOLTAGE_UNIT_V),
            target_current_a=_scaled(words[r.EV_TARGET_CURRENT_DA], CURRENT_UNIT_A),
            max_voltage_v=_scaled(words[r.EV_MAX_VOLTAGE_DV], VOLTAGE_UNIT_V),
            max_current_a=_scaled(words[r.EV_MAX_CURRENT_DA], CURRENT_UNIT_A),
        ),
        present=OutputMeasurement(
            voltage_v=_scaled(words[r.PRESENT_VOLTAGE_DV], VOLTAGE_UNIT_V),
            current_a=_scaled(words[r.PRESENT_CURRENT_DA], CURRENT_UNIT_A),
        ),
        lease=lease,
    )


def encode_inputs(snapshot: ControllerSnapshot) -> list[int]:
    """Snapshot -> fast block (the controller's side; the simulator serves these words):
    version 2's with the lease state, version 1's for a snapshot without one."""
    demand, present = snapshot.demand, snapshot.present
    words = [0] * INPUT_COUNT_V1
    r = InputRegister
    words[r.EV_STATE] = EV_STATE_CODES.index(snapshot.ev_state)
    words[r.SOC_PCT] = _value_word(snapshot.soc, 1.0)
    words[r.TARGET_SOC_PCT] = _value_word(snapshot.target_soc, 1.0)
    words[r.EV_MAX_POWER_HW] = min(int(snapshot.ev_max_power_w // POWER_UNIT_W), 0xFFFF)
    words[r.ERROR_CODE] = snapshot.error_code
    words[r.STANDARD] = STANDARD_CODES.index(snapshot.standard)
    words[r.PHASE] = PHASE_CODES.index(snapshot.phase)
    words[r.ERROR_FLAGS] = int(snapshot.errors)
    words[r.EV_TARGET_VOLTAGE_DV] = _value_word(demand.target_voltage_v, VOLTAGE_UNIT_V)
    words[r.EV_TARGET_CURRENT_DA] = _value_word(demand.target_current_a, CURRENT_UNIT_A)
    words[r.EV_MAX_VOLTAGE_DV] = _value_word(demand.max_voltage_v, VOLTAGE_UNIT_V)
    words[r.EV_MAX_CURRENT_DA] = _value_word(demand.max_current_a, CURRENT_UNIT_A)
    words[r.PRESENT_VOLTAGE_DV] = _value_word(present.voltage_v, VOLTAGE_UNIT_V)
    words[r.PRESENT_CURRENT_DA] = _value_word(present.current_a, CURRENT_UNIT_A)
    return words if snapshot.lease is None else [*words, LEASE_CODES.index(snapshot.lease)]


def encode_output(enabled: bool, power_limit_w: float) -> list[int]:
    """Holding 0..1 (enable, power limit): smartw's one write per cycle. The limit rounds
    down to 100 W steps (offering more than asked would break the station's power budget)."""
    return [1 if enabled else 0, _limit_word(power_limit_w, POWER_UNIT_W, "power")]


def encode_limits(limits: OutputLimits) -> list[int]:
    """Holding 1..3 (power, current, voltage limits), each rounded down; None = no limit."""
    return [_limit_word(value, unit, name) for value, unit, name in (
        (limits.power_w, POWER_UNIT_W, "power"),
        (limits.current_a, CURRENT_UNIT_A, "current"),
        (limits.voltage_v, VOLTAGE_UNIT_V, "voltage"),
    )]


def encode_lease(lease_s: float | None) -> int:
    """`lease_ds`: None or 0 = no lease; else 0.1 s steps, rounded down (a lease never holds
    longer than asked). ValueError below 0.1 s (it would read as "no lease") or above 60 s."""
    if lease_s is None or lease_s == 0:
        return NO_LEASE
    if not LEASE_UNIT_S <= lease_s <= MAX_LEASE_S:  # also refuses NaN
        raise ValueError(f"lease {lease_s} s is not 0 (none) or {LEASE_UNIT_S}..{MAX_LEASE_S} s")
    return math.floor(round(lease_s / LEASE_UNIT_S, 6))


def decode_lease(word: int) -> float | None:
    """`lease_ds` -> seconds, None = no lease; ValueError beyond the protocol's range."""
    if word > MAX_LEASE_DS:
        raise ValueError(f"lease_ds {word} is not 0..{MAX_LEASE_DS}")
    return None if word == NO_LEASE else round(word * LEASE_UNIT_S, 3)


def decode_output(words: list[int]) -> tuple[bool, OutputLimits]:
    """Holding 0..3 -> (enabled, limits): what the station asked (the controller's side)."""
    if len(words) != OUTPUT_COUNT:
        raise ValueError(f"expected {OUTPUT_COUNT} holding registers, got {len(words)}")
    if words[HoldingRegister.ENABLE] not in (0, 1):
        raise ValueError(f"enable {words[HoldingRegister.ENABLE]} is not 0 or 1")
    power, current, voltage = words[HoldingRegister.POWER_LIMIT_HW:]
    return bool(words[HoldingRegister.ENABLE]), OutputLimits(
        power_w=_scaled(power, POWER_UNIT_W, none=NO_LIMIT),
        current_a=_scaled(current, CURRENT_UNIT_A, none=NO_LIMIT),
        voltage_v=_scaled(voltage, VOLTAGE_UNIT_V, none=NO_LIMIT),
    )


def decode_identity(words: list[int]) -> Identity:
    if len(words) != IDENTITY_COUNT:
        raise ValueError(f"expected {IDENTITY_COUNT} identity registers, got {len(words)}")
    version, major, minor, patch, mode = words
    if mode not in (0, 1):
        raise ValueError(f"mode {mode} is not 0 (application) or 1 (bootloader)")
    return Identity(version, f"{major}.{minor}.{patch}", in_bootloader=mode == 1)


def encode_identity(firmware: tuple[int, int, int], *, in_bootloader: bool,
                    version: int = PROTOCOL_VERSION) -> list[int]:
    return [version, *firmware, 1 if in_bootloader else 0]


def _code(table: tuple[T, ...], word: int, name: str) -> T:
    if not 0 <= word < len(table):
        raise ValueError(f"{name} {word} is not 0..{len(table) - 1}")
    return table[word]


def _percent(word: int, name: str) -> float | None:
    if word == UNKNOWN:
        return None
    if word > 100:
        raise ValueError(f"{name} {word} is not 0..100 or 0xFFFF")
    return float(word)


def _scaled(word: int, unit: float, *, none: int = UNKNOWN) -> float | None:
    return None if word == none else round(word * unit, 3)


def _value_word(value: float | None, unit: float) -> int:
    """A measured value to its register; 0xFFFF is reserved for "unknown"."""
    if value is None:
        return UNKNOWN
    if not value >= 0:
        raise ValueError(f"cannot encode {value} (values are >= 0)")
    return min(round(value / unit), UNKNOWN - 1)


def _limit_word(value: float | None, unit: float, name: str) -> int:
    """A limit to its register, rounded down; None or anything beyond the range = no limit."""
    if value is None:
        return NO_LIMIT
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"{name} limit must be >= 0, got {value}")
    if math.isinf(value):
        return NO_LIMIT
    return min(math.floor(round(value / unit, 6)), NO_LIMIT)


class StationDcController:
    """A connector's controller speaking the station protocol (version 1 or 2) on a Modbus bus."""

    model = MODEL

    def __init__(self, hub: ModbusHub, device_id: int) -> None:
        self.hub = hub
        self.device_id = device_id
        self._firmware: str | None = None
        self._version: int | None = None
        self._limit_words = encode_limits(OutputLimits(power_w=0.0))  # the controller's power-up limits
        self._warned_no_lease = False

    @classmethod
    def for_connector(cls, hub: ModbusHub, connector: ConnectorConfig) -> StationDcController:
        return cls(hub, connector.controller.device_id)

    async def poll(self) -> ControllerSnapshot:
        if self._firmware is None:
            await self.read_firmware_version()
        count = INPUT_COUNT if self._version == LEASE_VERSION else INPUT_COUNT_V1
        words = await self.hub.read_registers(self.device_id, FunctionCode.READ_INPUT_REGISTERS, 0, count)
        return replace(self._decoded(decode_inputs, words), firmware_version=self._firmware)

    async def set_output(self, enabled: bool, power_limit_w: float, *, lease_s: float | None = None) -> None:
        """Offer energy (or stop offering it) up to `power_limit_w`, in one write (with the
        lease, the cached current and voltage limits ride along up to `lease_ds`)."""
        enable, power = encode_output(enabled, power_limit_w)
        await self._write_command(HoldingRegister.ENABLE, [enable, power], lease_s)
        self._limit_words = [power, *self._limit_words[1:]]

    async def set_enabled(self, enabled: bool, *, lease_s: float | None = None) -> None:
        await self._write_command(HoldingRegister.ENABLE, [1 if enabled else 0], lease_s)

    async def set_limits(self, limits: OutputLimits, *, lease_s: float | None = None) -> None:
        words = encode_limits(limits)
        await self._write_command(HoldingRegister.POWER_LIMIT_HW, words, lease_s)
        self._limit_words = words

    async def read_output(self) -> tuple[bool, float]:
        """What the controller holds now: (enabled, power limit W); for checks and diagnostics."""
        words = await self.hub.read_registers(self.device_id, FunctionCode.READ_HOLDING_REGISTERS,
                                              0, 2)
        return bool(words[HoldingRegister.ENABLE]), words[HoldingRegister.POWER_LIMIT_HW] * POWER_UNIT_W

    async def read_lease(self) -> float | None:
        """The lease the controller holds (`lease_ds`), None = none; version 2 only."""
        words = await self.hub.read_registers(self.device_id, FunctionCode.READ_HOLDING_REGISTERS,
                                              HoldingRegister.LEASE_DS, 1)
        return self._decoded(lambda lease_words: decode_lease(lease_words[0]), words)

    async def _write_command(self, address: int, words: list[int], lease_s: float | None) -> None:
        """Write `words` from `address`; with a lease, extend the request up to `lease_ds` with
        the cached limits, so command and lease arrive in one FC16 request."""
        lease = encode_lease(lease_s)  # ValueError before anything goes out
        if lease != NO_LEASE and await self._holds_lease():
            limits_after = self._limit_words[address + len(words) - HoldingRegister.POWER_LIMIT_HW:]
            words = [*words, *limits_after, lease]
        await self.hub.write_registers(self.device_id, address, words)

    async def _holds_lease(self) -> bool:
        """Whether the controller speaks the lease (read from its identity once); a version 1
        controller gets the command without it, and a warning once."""
        if self._version is None:
            await self.read_firmware_version()
        if self._version == LEASE_VERSION:
            return True
        if not self._warned_no_lease:
            log.warning("%s speaks controller protocol version %s, which has no lease: its output "
                        "holds until written again", self.hub.device_name(self.device_id), self._version)
            self._warned_no_lease = True
        return False

    async def read_firmware_version(self) -> str:
        words = await self.hub.read_registers(self.device_id, FunctionCode.READ_INPUT_REGISTERS,
                                              IDENTITY_START, IDENTITY_COUNT)
        identity = self._decoded(decode_identity, words)
        if identity.protocol_version not in SUPPORTED_VERSIONS:
            raise DeviceError(self.hub.device_name(self.device_id),
                              f"speaks controller protocol version {identity.protocol_version}, "
                              f"not {' or '.join(map(str, SUPPORTED_VERSIONS))}")
        self._version = identity.protocol_version
        self._firmware = identity.firmware_version
        return identity.firmware_version

    async def enter_bootloader(self) -> None:
        """The controller refuses (exception 06, a DeviceError) while its output is energised."""
        await self.hub.write_registers(self.device_id, HoldingRegister.BOOTLOADER, [BOOTLOADER_MAGIC])
        self._firmware = self._version = None  # a new firmware may come back from the bootloader

    def _decoded(self, decode: Callable[[list[int]], T], words: list[int]) -> T:
        try:
            return decode(words)
        except ValueError as error:
            raise DeviceError(self.hub.device_name(self.device_id),
                              f"bad controller data: {error}") from error
