"""The station charge controller (docs/controller-protocol.md, version 0), one per connector.

The register addresses below are the protocol's; the simulator imports them so both sides
of the wire share one definition, and the tests check them against raw words.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from workers.drivers.errors import DeviceError
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import FunctionCode

UNKNOWN = 0xFFFF  # "unknown" in soc_pct / target_soc_pct
POWER_UNIT_W = 100  # ev_max_power_hw and power_limit_hw count 100 W steps


class InputRegister(IntEnum):
    """FC04, read by the station."""

    EV_STATE = 0
    SOC_PCT = 1
    TARGET_SOC_PCT = 2
    EV_MAX_POWER_HW = 3
    ERROR_CODE = 4


class HoldingRegister(IntEnum):
    """FC03 read / FC16 write, written by the station."""

    ENABLE = 0
    POWER_LIMIT_HW = 1


INPUT_COUNT = len(InputRegister)
HOLDING_COUNT = len(HoldingRegister)


class EvState(StrEnum):
    """IEC 61851 vehicle state as the controller reports it; value = the state letter."""

    A = "A"  # no EV
    B = "B"  # EV connected, not asking for energy
    C = "C"  # EV asks for energy
    F = "F"  # controller or EV error

    @property
    def code(self) -> int:
        """Wire value of `ev_state`."""
        return _EV_STATE_CODES.index(self)

    @classmethod
    def from_code(cls, code: int) -> EvState:
        if not 0 <= code < len(_EV_STATE_CODES):
            raise ValueError(f"ev_state {code} is not 0..{len(_EV_STATE_CODES) - 1}")
        return _EV_STATE_CODES[code]


_EV_STATE_CODES = (EvState.A, EvState.B, EvState.C, EvState.F)


@dataclass(frozen=True)
class ControllerSnapshot:
    ev_state: EvState
    soc: float | None  # %, None = unknown (AC)
    target_soc: float | None  # %, None = unknown
    ev_max_power_w: float  # what the EV can take now, W
    error_code: int  # 0 = none, else the vendor's code (OCPP vendorErrorCode)


def decode_inputs(words: list[int]) -> ControllerSnapshot:
    """Input registers 0..4 -> snapshot; raises ValueError on values outside the protocol."""
    if len(words) != INPUT_COUNT:
        raise ValueError(f"expected {INPUT_COUNT} input registers, got {len(words)}")
    return ControllerSnapshot(
        ev_state=EvState.from_code(words[InputRegister.EV_STATE]),
        soc=_percent(words[InputRegister.SOC_PCT], "soc_pct"),
        target_soc=_percent(words[InputRegister.TARGET_SOC_PCT], "target_soc_pct"),
        ev_max_power_w=float(words[InputRegister.EV_MAX_POWER_HW] * POWER_UNIT_W),
        error_code=words[InputRegister.ERROR_CODE],
    )


def encode_output(enabled: bool, power_limit_w: float) -> list[int]:
    """Holding registers 0..1 for an output command; the limit rounds down to 100 W steps
    (offering more than asked would break the station's power budget)."""
    if not power_limit_w >= 0:  # also refuses NaN
        raise ValueError(f"power limit must be >= 0 W, got {power_limit_w}")
    steps = int(min(power_limit_w, 0xFFFF * POWER_UNIT_W) // POWER_UNIT_W)
    return [1 if enabled else 0, steps]


def _percent(word: int, name: str) -> float | None:
    if word == UNKNOWN:
        return None
    if word > 100:
        raise ValueError(f"{name} {word} is not 0..100 or 0xFFFF")
    return float(word)


class ChargeController:
    """A connector's charge controller on a Modbus bus."""

    def __init__(self, hub: ModbusHub, device_id: int) -> None:
        self.hub = hub
        self.device_id = device_id

    async def poll(self) -> ControllerSnapshot:
        words = await self.hub.read_registers(self.device_id, FunctionCode.READ_INPUT_REGISTERS,
                                              0, INPUT_COUNT)
        try:
            return decode_inputs(words)
        except ValueError as error:
            name = self.hub.device_name(self.device_id)
            raise DeviceError(name, f"bad controller data: {error}") from error

    async def set_output(self, enabled: bool, power_limit_w: float) -> None:
        """Offer energy (or stop offering it) up to `power_limit_w`, in one write."""
        await self.hub.write_registers(self.device_id, HoldingRegister.ENABLE,
                                       encode_output(enabled, power_limit_w))

    async def read_output(self) -> tuple[bool, float]:
        """What the controller holds now: (enabled, power limit W); for checks and diagnostics."""
        words = await self.hub.read_registers(self.device_id, FunctionCode.READ_HOLDING_REGISTERS,
                                              0, HOLDING_COUNT)
        limit_w = float(words[HoldingRegister.POWER_LIMIT_HW] * POWER_UNIT_W)
        return bool(words[HoldingRegister.ENABLE]), limit_w
