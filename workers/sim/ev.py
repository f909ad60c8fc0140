"""A simulated EV: a battery with a state of charge, a target, and a taper near full.

It asks for energy (IEC 61851 state C) until it reaches its target SoC, then goes back to
state B. It takes min(what the station offers, its own maximum, the taper of its battery).
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.drivers.controller import EvState

TAPER_START_PCT = 80.0  # above this SoC the battery accepts less and less power
TAPER_FLOOR = 0.05  # share of max power still accepted just below 100 %
DEFAULT_SOC_PCT = 20.0
DEFAULT_TARGET_SOC_PCT = 80.0
DEFAULT_CAPACITY_KWH = 60.0
DEFAULT_MAX_POWER_KW_DC = 100.0
DEFAULT_MAX_POWER_KW_AC = 11.0
PACK_EMPTY_V = 330.0  # DC pack voltage at 0 % SoC ("400 V class" battery)
PACK_FULL_V = 400.0  # DC pack voltage at 100 % SoC


@dataclass
class SimulatedEv:
    soc: float  # %, 0..100
    target_soc: float  # %, stops asking at or above it
    capacity_kwh: float
    max_power_w: float

    def __post_init__(self) -> None:
        if not (0 <= self.soc <= 100 and 0 <= self.target_soc <= 100):
            raise ValueError(f"soc {self.soc} and target {self.target_soc} must be 0..100 %")
        if self.capacity_kwh <= 0 or self.max_power_w <= 0:
            raise ValueError("capacity and max power must be > 0")

    @property
    def full(self) -> bool:
        return self.soc >= self.target_soc

    @property
    def state(self) -> EvState:
        return EvState.B if self.full else EvState.C

    def acceptance_w(self) -> float:
        """Power the EV can take now: its maximum, tapered above 80 %, 0 once at target."""
        if self.full:
            return 0.0
        if self.soc <= TAPER_START_PCT:
            return self.max_power_w
        share = (100.0 - self.soc) / (100.0 - TAPER_START_PCT)
        return self.max_power_w * max(TAPER_FLOOR, share)

    def pack_voltage_v(self) -> float:
        return PACK_EMPTY_V + (PACK_FULL_V - PACK_EMPTY_V) * self.soc / 100.0

    def charge(self, offered_w: float, dt_s: float) -> float:
        """Take up to `offered_w` for `dt_s` seconds; returns the power drawn, W."""
        power = max(0.0, min(offered_w, self.acceptance_w()))
        if power <= 0 or dt_s <= 0:
            return 0.0
        energy_kwh = power * dt_s / 3_600_000.0
        self.soc = min(100.0, self.soc + 100.0 * energy_kwh / self.capacity_kwh)
        return power
