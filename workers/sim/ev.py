"""A simulated EV: its battery (capacity, SoC, pack voltage) and what it asks for.

The demand model is reference/hardware.md §5.3 (a modelling choice, not a standard): the
open-circuit voltage rises linearly from 0.85·Vmax at 0 % to Vmax at 100 %, the pack's
terminal voltage is OCV + I·R (at most Vmax), and the current the EV asks for is flat
(constant current) up to TAPER_START_PCT, then tapers linearly to TAPER_END_SHARE of its
maximum at 100 %. The session models (workers/sim/ev_sessions) decide when energy flows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TAPER_START_PCT = 55.0  # constant current up to this SoC
TAPER_END_SHARE = 0.1  # share of the maximum current still asked at 100 %
OCV_EMPTY_SHARE = 0.85  # open-circuit voltage at 0 % SoC, share of the pack's maximum voltage
PACK_MAX_V = 410.0  # a "400 V class" pack (the Leaf trace of §5.4 targets 410 V)
INTERNAL_RESISTANCE_OHM = 0.05  # 250 A raise the terminal voltage by 12.5 V
DEFAULT_SOC_PCT = 20.0
DEFAULT_TARGET_SOC_PCT = 80.0
DEFAULT_CAPACITY_KWH = 60.0
DEFAULT_MAX_POWER_KW_DC = 100.0
DEFAULT_MAX_POWER_KW_AC = 11.0  # on-board charger
DEFAULT_CABLE_CURRENT_A = 32.0  # Type 2 cable's PP coding (220 Ω)
DEFAULT_AC_PHASES = 3


def current_share(soc: float) -> float:
    """Share of its maximum current the battery accepts at this SoC (CC, then taper)."""
    if soc <= TAPER_START_PCT:
        return 1.0
    progress = min(1.0, (soc - TAPER_START_PCT) / (100.0 - TAPER_START_PCT))
    return 1.0 - (1.0 - TAPER_END_SHARE) * progress


@dataclass
class Battery:
    capacity_kwh: float
    soc: float  # %, 0..100
    max_voltage_v: float = PACK_MAX_V
    internal_resistance_ohm: float = INTERNAL_RESISTANCE_OHM

    def __post_init__(self) -> None:
        if not 0 <= self.soc <= 100:
            raise ValueError(f"soc {self.soc} must be 0..100 %")
        if self.capacity_kwh <= 0 or self.max_voltage_v <= 0 or self.internal_resistance_ohm < 0:
            raise ValueError("capacity and maximum voltage must be > 0, resistance >= 0")

    def open_circuit_voltage_v(self) -> float:
        return self.max_voltage_v * (OCV_EMPTY_SHARE + (1.0 - OCV_EMPTY_SHARE) * self.soc / 100.0)

    def terminal_voltage_v(self, current_a: float) -> float:
        """Voltage at the pack's terminals while `current_a` flows in."""
        rise_v = current_a * self.internal_resistance_ohm
        return min(self.max_voltage_v, self.open_circuit_voltage_v() + rise_v)

    def current_for_power_a(self, power_w: float) -> float:
        """The current that makes `power_w` at the terminals: (OCV + I·R)·I = P."""
        ocv, resistance = self.open_circuit_voltage_v(), self.internal_resistance_ohm
        if power_w <= 0:
            return 0.0
        current = power_w / ocv if resistance == 0 else (
            (math.sqrt(ocv * ocv + 4 * resistance * power_w) - ocv) / (2 * resistance))
        return min(current, power_w / self.terminal_voltage_v(current))

    def absorb(self, power_w: float, dt_s: float) -> None:
        """Store `power_w` for `dt_s` seconds (losses are the on-board charger's business)."""
        if power_w > 0 and dt_s > 0:
            energy_kwh = power_w * dt_s / 3_600_000.0
            self.soc = min(100.0, self.soc + 100.0 * energy_kwh / self.capacity_kwh)


@dataclass
class SimulatedEv:
    battery: Battery
    target_soc: float  # %, the EV stops asking at or above it
    max_power_w: float  # DC: most the EV takes; AC: its on-board charger's rating
    cable_current_a: float = DEFAULT_CABLE_CURRENT_A  # Type 2 cable rating (PP)
    ac_phases: int = DEFAULT_AC_PHASES  # phases its on-board charger uses
    paused: bool = False  # paused by the EV itself (`sim pause N`)

    def __post_init__(self) -> None:
        if not 0 <= self.target_soc <= 100:
            raise ValueError(f"target soc {self.target_soc} must be 0..100 %")
        if self.max_power_w <= 0 or self.cable_current_a <= 0 or self.ac_phases not in (1, 3):
            raise ValueError("max power and cable current must be > 0, phases 1 or 3")

    @property
    def soc(self) -> float:
        return self.battery.soc

    @property
    def full(self) -> bool:
        return self.soc >= self.target_soc

    @property
    def wants_energy(self) -> bool:
        return not self.full and not self.paused

    @property
    def dc_max_current_a(self) -> float:
        """Its maximum current: its maximum power at the pack's maximum voltage."""
        return self.max_power_w / self.battery.max_voltage_v

    def dc_current_request_a(self) -> float:
        """EVTargetCurrent: what the battery accepts now; 0 when full or paused."""
        return self.dc_max_current_a * current_share(self.soc) if self.wants_energy else 0.0

    def dc_target_voltage_v(self) -> float:
        """EVTargetVoltage: the pack's voltage at the current it asks for."""
        return self.battery.terminal_voltage_v(self.dc_current_request_a())

    def ac_current_request_a(self, voltage_v: float) -> float:
        """Per-phase current its on-board charger takes now (before the PWM limit)."""
        if not self.wants_energy:
            return 0.0
        return self.max_power_w / (self.ac_phases * voltage_v) * current_share(self.soc)
