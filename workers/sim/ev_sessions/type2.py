"""A Type 2 (IEC 61851-1 basic AC) session: A -> B1 -> B2 -> C2 and back (reference/hardware.md §5.2).

The controller turns the PWM on when the station enables it with at least 6 A within every
limit, its duty from the current (EVerest's table). It raises the duty at most every 5 s
(IEC_PWM_MAX_UPDATE_INTERVAL); a lower limit applies at once, so the station's power budget
holds (the EV then follows within its response time, as IEC 61851 allows). The EV closes S2
(B -> C) a moment after it sees a valid PWM, draws min(PWM current, its on-board charger's
current with taper), opens S2 when full or paused, and closes it again to resume (C1 tells
the station it wants energy even while the PWM is off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bus.enums import Standard
from workers.drivers.controllers.iec61851 import (
    MIN_CURRENT_A,
    PWM_MAX_UPDATE_INTERVAL_S,
    PilotState,
    Type2Memory,
    amps_to_duty,
    duty_to_amps,
    type2_state,
)
from workers.drivers.controllers.interface import (
    NO_ERRORS,
    ControllerError,
    EvDemand,
    EvState,
    OutputMeasurement,
    SessionPhase,
)
from workers.sim.ev import SimulatedEv
from workers.sim.ev_sessions.base import SIM_TIME_SCALE, EvFault, Offer, SessionClock, SessionView, toward

SUPPLY_VOLTAGE_V = 230.0  # phase-to-neutral
SUPPLY_PHASES = 3
_FAULT_FLAGS = {
    EvFault.DIODE_FAIL: ControllerError.DIODE,  # found when the PWM's negative half is checked
    EvFault.COMM_LOSS: ControllerError.EV_COMMUNICATION,
    EvFault.OVERTEMP: ControllerError.OVERTEMPERATURE,
}


@dataclass(frozen=True)
class Type2Timings:
    s2_close_s: float = 1.0  # the EV closes S2 this long after it sees a valid PWM
    ev_response_s: float = 2.0  # the EV moves its current to a new limit within this (IEC: 5 s)
    pwm_update_interval_s: float = PWM_MAX_UPDATE_INTERVAL_S


class Type2Session:
    standard = Standard.TYPE2

    def __init__(self, ev: SimulatedEv, *, time_scale: float = SIM_TIME_SCALE,
                 timings: Type2Timings = Type2Timings(), phases: int = SUPPLY_PHASES,
                 voltage_v: float = SUPPLY_VOLTAGE_V) -> None:
        self.ev = ev
        self.timings = timings
        self.phases = phases
        self.voltage_v = voltage_v
        self.clock = SessionClock(time_scale)
        self.pwm_amps: float | None = None  # None = PWM off (state X1)
        self.pwm_changed_at_s = -math.inf
        self.pwm_seen_at_s: float | None = None  # when the EV first saw the PWM it now sees
        self.s2_closed = False
        self.current_a = 0.0  # per phase
        self.live = False
        self.errors = NO_ERRORS
        self.memory = Type2Memory()

    @property
    def duty_pct(self) -> float | None:
        return None if self.pwm_amps is None else amps_to_duty(self.pwm_amps)

    @property
    def power_w(self) -> float:
        return self.current_a * min(self.ev.ac_phases, self.phases) * self.voltage_v if self.live else 0.0

    def pilot(self) -> PilotState:
        if self.errors:
            return PilotState("F", False)
        return PilotState("C" if self.s2_closed else "B", self.pwm_amps is not None)

    def step(self, offer: Offer, faults: frozenset[EvFault], dt_s: float) -> None:
        nominal_s = self.clock.advance(dt_s)
        self.live = offer.live
        if not self.errors:
            self._set_pwm(offer)
            self.errors = self._detected(faults)
        if self.errors:  # the controller stops at once: PWM off, output off
            self.pwm_amps, self.s2_closed, self.current_a = None, False, 0.0
            return
        self._ev_switches_s2()
        self._ev_draws(nominal_s)
        self.ev.battery.absorb(self.power_w, dt_s)
        self.memory.observe(self.pilot(), self.clock.now_s)

    def view(self) -> SessionView:
        pilot = self.pilot()
        ev_state, phase = type2_state(pilot, self.memory)
        if phase is SessionPhase.PLUGGED and pilot.letter == "C" and self.current_a > 0:
            phase = SessionPhase.STOPPING  # PWM off, the EV is still bringing its current down
        asks_w = self.ev.cable_current_a * self.phases * self.voltage_v if ev_state is EvState.C else 0.0
        return SessionView(
            standard=self.standard, phase=phase, ev_state=ev_state, ev_max_power_w=asks_w,
            power_w=self.power_w, demand=EvDemand(max_current_a=self.ev.cable_current_a),
            present=OutputMeasurement(voltage_v=self.voltage_v if self.live else 0.0,
                                      current_a=self.current_a if self.live else 0.0),
            errors=self.errors, pilot=pilot, pwm_current_a=self.pwm_amps,
        )

    def _offered_amps(self, offer: Offer) -> float | None:
        if not offer.enabled:
            return None
        limits, amps = offer.limits, self.ev.cable_current_a
        if limits.current_a is not None:
            amps = min(amps, limits.current_a)
        if limits.power_w is not None:
            amps = min(amps, limits.power_w / (self.phases * self.voltage_v))
        return amps if amps >= MIN_CURRENT_A and amps_to_duty(amps) is not None else None

    def _set_pwm(self, offer: Offer) -> None:
        target, now = self._offered_amps(offer), self.clock.now_s
        current = self.pwm_amps
        rising = current is not None and target is not None and target > current
        if rising and now - self.pwm_changed_at_s < self.timings.pwm_update_interval_s:
            return
        if target != current:
            self.pwm_amps, self.pwm_changed_at_s = target, now

    def _detected(self, faults: frozenset[EvFault]) -> ControllerError:
        errors = NO_ERRORS
        for fault in faults:
            if fault is EvFault.DIODE_FAIL and self.pwm_amps is None:
                continue  # the diode is checked on the PWM's negative half
            errors |= _FAULT_FLAGS.get(fault, NO_ERRORS)
        return errors

    def _ev_switches_s2(self) -> None:
        valid_pwm = self.duty_pct is not None and duty_to_amps(self.duty_pct) is not None
        if not valid_pwm:
            self.pwm_seen_at_s = None
        elif self.pwm_seen_at_s is None:
            self.pwm_seen_at_s = self.clock.now_s
        if not self.ev.wants_energy:
            self.s2_closed = False
        elif not self.s2_closed:
            waited = valid_pwm and self.clock.now_s - self.pwm_seen_at_s >= self.timings.s2_close_s
            self.s2_closed = waited or self.memory.refused  # resume: C1 asks for the PWM again

    def _ev_draws(self, nominal_s: float) -> None:
        if not self.live:
            self.current_a = 0.0  # contactor open: nothing can flow
            return
        allowed = duty_to_amps(self.duty_pct) if self.s2_closed and self.duty_pct is not None else None
        target = min(allowed, self.ev.ac_current_request_a(self.voltage_v)) if allowed else 0.0
        full_scale = max(self.ev.cable_current_a, self.current_a)
        self.current_a = toward(self.current_a, target, full_scale / self.timings.ev_response_s * nominal_s)
