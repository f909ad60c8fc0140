"""station.toml's IO vocabulary: a point on the IO module (address + polarity) and the named inputs.

An input's polarity is wiring, not code: an e-stop or door switch is usually normally closed
(NC: the input reads 1 while all is well, so a broken wire looks like a pressed button: fail
safe), an IMD alarm relay or a breaker auxiliary contact may be either. The drivers and the
simulator turn a wire level into "active" and back only through `IoPoint`, so the rule lives
in one place. What an address means (a discrete input, a coil, or a bit of a register)
depends on the module's layout (`IoModuleConfig.layout` in station_config).
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

OWEN_OUTPUT_REGISTER = 50  # MU110-16R: holding register = output bitmask (reference/hardware.md §2.3)
OWEN_INPUT_REGISTER = 51  # MV110-16DN: register = input bitmask


class Polarity(StrEnum):
    NO = "no"  # normally open: reads 1 while the signal is active (pressed, open, tripped)
    NC = "nc"  # normally closed: reads 1 while healthy; 0 = active or a broken wire


class IoPoint(BaseModel):
    """One input: `address` (0-based protocol address, or bit number for register layouts)
    and `polarity`. A bare number in station.toml is a normally-open input at that address."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: int = Field(ge=0, le=0xFFFF)
    polarity: Polarity = Polarity.NO

    @model_validator(mode="before")
    @classmethod
    def _bare_address(cls, value: object) -> object:
        return {"address": value} if isinstance(value, int) and not isinstance(value, bool) else value

    def active(self, level: bool) -> bool:
        """The signal's state from the level the input reads."""
        return level if self.polarity is Polarity.NO else not level

    def level(self, active: bool) -> bool:
        """The level the input reads while the signal is `active` (what the simulator drives)."""
        return active if self.polarity is Polarity.NO else not active


class InputSignal(StrEnum):
    """The station-wide inputs an IO module may carry; `estop` is required, the rest optional."""

    ESTOP = "estop"  # active = pressed
    DOOR = "door"  # active = open
    IMD_ALARM = "imd_alarm"  # active = the insulation monitor's alarm relay reports a fault
    SPD = "spd"  # active = the surge protection device has tripped
    BREAKER = "breaker"  # active = the main breaker has tripped
    FAN_ALARM = "fan_alarm"  # active = the fan unit reports a failure


class IoInputs(BaseModel):
    """`[io_module.inputs]`: where each named signal is wired."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    estop: IoPoint
    door: IoPoint | None = None
    imd_alarm: IoPoint | None = None
    spd: IoPoint | None = None
    breaker: IoPoint | None = None
    fan_alarm: IoPoint | None = None

    def wired(self) -> Iterator[tuple[InputSignal, IoPoint]]:
        """Every configured signal with its point."""
        for signal in InputSignal:
            point = getattr(self, signal.value)
            if point is not None:
                yield signal, point


def check_distinct(kind: str, addresses: dict[str, int]) -> None:
    """Two signals on one address is a wiring error; the message names both."""
    seen: dict[int, str] = {}
    for name, address in addresses.items():
        if address in seen:
            raise ValueError(f"io_module: {name} and {seen[address]} are both on {kind} {address}")
        seen[address] = name
