"""Drive a simulated EV session step by step in nominal time, recording when each phase began.

Sessions run at a time scale of 1/100, so a 40 s CCS cable-check limit takes 0.4 s of the
session's clock and no test waits for wall-clock time (the session never reads a clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bus.enums import Standard
from workers.drivers.controllers.interface import OutputLimits, SessionPhase
from workers.sim.ev import Battery, SimulatedEv
from workers.sim.ev_sessions import EvFault, EvSession, Offer, new_session

SCALE = 0.01  # session time scale: one nominal second is 10 ms of session clock
STEP_S = 0.1  # nominal seconds per step
CHARGE = Offer(enabled=True, live=True, limits=OutputLimits(power_w=50_000.0))
WAIT = Offer(enabled=False, live=False, limits=OutputLimits(power_w=0.0))


def plug(standard: Standard, *, soc: float = 20.0, target: float = 80.0, capacity_kwh: float = 60.0,
         max_kw: float | None = None, max_voltage_v: float = 410.0) -> Drive:
    max_w = (max_kw or (11.0 if standard is Standard.TYPE2 else 100.0)) * 1000.0
    ev = SimulatedEv(Battery(capacity_kwh, soc, max_voltage_v=max_voltage_v), target_soc=target,
                     max_power_w=max_w)
    return Drive(new_session(standard, ev, time_scale=SCALE))


@dataclass
class Drive:
    session: EvSession
    now_s: float = 0.0  # nominal seconds driven
    began: list[tuple[SessionPhase, float]] = field(default_factory=list)  # phase, nominal start

    def __post_init__(self) -> None:
        self.began.append((self.session.view().phase, 0.0))

    @property
    def phase(self) -> SessionPhase:
        return self.session.view().phase

    def run(self, seconds: float, offer: Offer = CHARGE, faults: frozenset[EvFault] = frozenset()) -> Drive:
        for _ in range(round(seconds / STEP_S)):
            self.step(offer, faults)
        return self

    def until(self, phase: SessionPhase, offer: Offer = CHARGE, *, limit_s: float = 120.0,
              faults: frozenset[EvFault] = frozenset()) -> float:
        """Step until `phase` begins; returns the nominal time it began."""
        while self.phase is not phase:
            if self.now_s > limit_s:
                raise AssertionError(f"{phase} not reached in {limit_s} s; phases: {self.began}")
            self.step(offer, faults)
        return self.now_s

    def step(self, offer: Offer = CHARGE, faults: frozenset[EvFault] = frozenset()) -> None:
        self.session.step(offer, faults, STEP_S * SCALE)
        self.now_s = round(self.now_s + STEP_S, 6)
        phase = self.phase
        if phase is not self.began[-1][0]:
            self.began.append((phase, self.now_s))

    def phases(self) -> list[SessionPhase]:
        return [phase for phase, _ in self.began]

    def durations(self) -> dict[SessionPhase, float]:
        """How long each phase lasted (the last one: until now), nominal seconds."""
        ends = [start for _, start in self.began[1:]] + [self.now_s]
        return {phase: round(end - start, 6) for (phase, start), end in zip(self.began, ends, strict=True)}
