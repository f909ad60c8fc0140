"""What every simulated EV session shares: what the controller offers it, what it shows
back, its clock, and the faults a test or `manage.py sim fault` can inject.

Timings are the standards' (or realistic) nominal seconds; a session runs them `time_scale`
times as long (0.1 = ten times faster), so tests and the running simulator need not wait
through a real cable check. Energy is never scaled: a battery fills in real time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from bus.enums import Standard
from workers.drivers.controllers.iec61851 import PilotState
from workers.drivers.controllers.interface import (
    NO_ERRORS,
    ControllerError,
    EvDemand,
    EvState,
    OutputLimits,
    OutputMeasurement,
    SessionPhase,
)
from workers.sim.ev import SimulatedEv

SIM_TIME_SCALE = 0.1  # the running simulator's sessions: ten times faster than nominal


class EvFault(StrEnum):
    """Faults a simulated session reacts to; the value is the `sim fault` kind."""

    DIODE_FAIL = "diode_fail"  # Type 2: no diode in the EV's CP circuit
    INSULATION = "insulation"  # DC: the cable check (or the IMD while charging) finds a fault
    OVERTEMP = "overtemp"  # connector/cable over temperature: the controller stops
    COMM_LOSS = "comm_loss"  # EV communication lost (PLC/CAN silent, CP signal lost)
    WELDING = "welding"  # DC: welding detection finds a welded contactor


@dataclass(frozen=True)
class Offer:
    """What the station and the cabinet give the session this step."""

    enabled: bool  # the station authorised the session (controller `enable`)
    live: bool  # the output can carry energy: contactor closed, e-stop released
    limits: OutputLimits = field(default_factory=OutputLimits)


@dataclass(frozen=True)
class SessionView:
    """The session as its controller sees it; the controller's registers are made from it."""

    standard: Standard
    phase: SessionPhase
    ev_state: EvState
    ev_max_power_w: float
    power_w: float  # delivered now
    demand: EvDemand = field(default_factory=EvDemand)
    present: OutputMeasurement = field(default_factory=OutputMeasurement)
    errors: ControllerError = NO_ERRORS
    soc: float | None = None
    target_soc: float | None = None
    pilot: PilotState | None = None  # Type 2 only
    pwm_current_a: float | None = None  # Type 2: the current the PWM offers, None = PWM off


class EvSession(Protocol):
    standard: Standard
    ev: SimulatedEv

    def step(self, offer: Offer, faults: frozenset[EvFault], dt_s: float) -> None:
        """Move the session on by `dt_s` real seconds."""
        ...

    def view(self) -> SessionView: ...


@dataclass
class SessionClock:
    """Nominal seconds since plug-in and since the current phase began."""

    time_scale: float
    now_s: float = 0.0
    phase_since_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.time_scale > 0:
            raise ValueError(f"time scale must be > 0, got {self.time_scale}")

    def advance(self, dt_s: float) -> float:
        """Real seconds -> nominal seconds passed."""
        nominal = max(dt_s, 0.0) / self.time_scale
        self.now_s += nominal
        return nominal

    def enter_phase(self) -> None:
        self.phase_since_s = self.now_s

    @property
    def in_phase_s(self) -> float:
        return self.now_s - self.phase_since_s


def toward(value: float, target: float, max_step: float) -> float:
    """`value` moved toward `target` by at most `max_step`."""
    if value < target:
        return min(target, value + max_step)
    return max(target, value - max_step)
