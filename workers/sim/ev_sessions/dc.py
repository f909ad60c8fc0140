"""A DC session (CCS, CHAdeMO, GB/T): the phases every DC standard runs, driven by a profile.

The standards differ in order and timing (ccs.py, chademo.py, gbt.py hold their profiles);
the mechanics are shared: a cable check at the profile's test voltage that fails on an
insulation fault, a precharge to the battery voltage within a time limit, current demand
(the EV asks for its battery's current, ramping up; the controller delivers the least of that
and the station's limits), a ramp-down on a stop from either side, and welding detection.
Output steps need a live output (contactor closed); a step that cannot finish in its time
limit faults the session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bus.enums import Standard
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
from workers.sim.ev_sessions.base import SIM_TIME_SCALE, EvFault, Offer, SessionClock, SessionView, toward

P = SessionPhase
RATED_VOLTAGE_V = 1000.0  # the simulated DC controller's output range
RATED_CURRENT_A = 500.0
PRECHARGE_CURRENT_A = 2.0  # what the EV asks for while the output comes up to its voltage
PRECHARGE_TOLERANCE_V = 10.0  # precharge ends this close to the battery voltage
_OUTPUT_PHASES = frozenset({P.PRECHARGE, P.CHARGING, P.PAUSED_BY_EV, P.STOPPING})  # IMD watching
_COMMUNICATING = frozenset({P.HANDSHAKE, P.PARAMETER_EXCHANGE, P.CABLE_CHECK, P.PRECHARGE, P.CHARGING,
                            P.PAUSED_BY_EV, P.STOPPING, P.WELDING_DETECTION})
_EV_DONE = frozenset({P.PAUSED_BY_EV, P.STOPPING, P.WELDING_DETECTION, P.FINISHED})


@dataclass(frozen=True)
class DcTimings:
    """Nominal seconds (rates per nominal second)."""

    handshake_s: float
    parameters_s: float
    cable_check_s: float
    cable_check_timeout_s: float
    precharge_timeout_s: float
    welding_s: float
    voltage_rate_v_per_s: float = 200.0  # output voltage slew in cable check and precharge
    ev_current_rate_a_per_s: float = 100.0  # how fast the EV raises its current request
    ramp_down_a_per_s: float = 250.0  # how fast the controller brings current to zero on a stop


@dataclass(frozen=True)
class DcProfile:
    standard: Standard
    sequence: tuple[SessionPhase, ...]  # the steps from plug-in to charging, in order
    starts_on_plug: bool  # CCS: communication and handshake run before the station authorises
    welding_detection: bool
    timings: DcTimings
    test_voltage_v: Callable[[float, float], float]  # (EV max V, EVSE max V) -> cable check V


class DcSession:
    def __init__(self, ev: SimulatedEv, profile: DcProfile, *, time_scale: float = SIM_TIME_SCALE) -> None:
        self.ev = ev
        self.profile = profile
        self.standard = profile.standard
        self.clock = SessionClock(time_scale)
        self.phase = P.PLUGGED
        self.errors = NO_ERRORS
        self.voltage_v = 0.0
        self.current_a = 0.0
        self.ev_target_a = 0.0  # the EV's current request, ramping toward what its battery takes
        self.parameters_known = False
        self.ev_contactors_closed = False  # precharge done: welding detection follows a stop
        self.live = False
        self._limits = OutputLimits()
        if profile.starts_on_plug:
            self._enter(profile.sequence[0])

    @property
    def power_w(self) -> float:
        return self.voltage_v * self.current_a if self.live else 0.0

    @property
    def evse_max_voltage_v(self) -> float:
        limit = self._limits.voltage_v
        return RATED_VOLTAGE_V if limit is None else min(limit, RATED_VOLTAGE_V)

    def step(self, offer: Offer, faults: frozenset[EvFault], dt_s: float) -> None:
        nominal_s = self.clock.advance(dt_s)
        self.live, self._limits = offer.live, offer.limits
        if self.phase is P.FAULT:
            return
        detected = self._detected(faults)
        if detected:
            self._fail(detected)
            return
        self._run_phase(offer, faults, nominal_s)
        self.ev.battery.absorb(self.power_w, dt_s)

    def view(self) -> SessionView:
        known = self.parameters_known
        return SessionView(
            standard=self.standard, phase=self.phase, ev_state=self._ev_state(),
            ev_max_power_w=self._ev_asks_w(), power_w=self.power_w, demand=self._demand(),
            present=OutputMeasurement(voltage_v=self.voltage_v, current_a=self.current_a),
            errors=self.errors, soc=round(self.ev.soc, 1) if known else None,
            target_soc=self.ev.target_soc if known else None,
        )

    # ---- phases ------------------------------------------------------------------

    def _run_phase(self, offer: Offer, faults: frozenset[EvFault], nominal_s: float) -> None:
        phase = self.phase
        if phase is P.PLUGGED:
            if offer.enabled:
                self._enter(self.profile.sequence[0])
        elif phase in (P.HANDSHAKE, P.PARAMETER_EXCHANGE):
            self._timed_step(offer)
        elif phase is P.CABLE_CHECK:
            self._cable_check(offer, faults, nominal_s)
        elif phase is P.PRECHARGE:
            self._precharge(offer, nominal_s)
        elif phase in (P.CHARGING, P.PAUSED_BY_EV):
            self._current_demand(offer, nominal_s)
        elif phase is P.STOPPING:
            self._ramp_down(nominal_s)
        elif phase is P.WELDING_DETECTION:
            self._welding_detection(faults)

    def _timed_step(self, offer: Offer) -> None:
        """Handshake and parameter exchange: communication only, for a fixed time. CCS's
        handshake ends in the authorisation loop, which waits for the station's enable."""
        before_authorisation = self.profile.starts_on_plug and self.phase is self.profile.sequence[0]
        if not offer.enabled and not before_authorisation:
            self._stop()
            return
        timings = self.profile.timings
        duration = timings.handshake_s if self.phase is P.HANDSHAKE else timings.parameters_s
        if self.clock.in_phase_s < duration or not offer.enabled:
            return
        if self.phase is P.PARAMETER_EXCHANGE:
            self.parameters_known = True
            if self.ev.battery.max_voltage_v > self.evse_max_voltage_v:
                self._fail(ControllerError.INCOMPATIBLE)
                return
        self._next()

    def _cable_check(self, offer: Offer, faults: frozenset[EvFault], nominal_s: float) -> None:
        timings = self.profile.timings
        if not offer.enabled:
            self._stop()
            return
        if self.clock.in_phase_s > timings.cable_check_timeout_s:
            self._fail(ControllerError.SEQUENCE_TIMEOUT)
            return
        if not self.live:
            self.voltage_v = 0.0  # no path to the output: the test waits for the contactor
            return
        test_v = self.profile.test_voltage_v(self.ev.battery.max_voltage_v, self.evse_max_voltage_v)
        self.voltage_v = toward(self.voltage_v, test_v, timings.voltage_rate_v_per_s * nominal_s)
        if self.voltage_v < test_v:
            return
        if EvFault.INSULATION in faults:
            self._fail(ControllerError.INSULATION)
        elif self.clock.in_phase_s >= timings.cable_check_s:
            self.voltage_v = 0.0  # discharged below 60 V (10 V for CHAdeMO) before precharge
            self._next()

    def _precharge(self, offer: Offer, nominal_s: float) -> None:
        if not offer.enabled:
            self._stop()
            return
        if self.clock.in_phase_s > self.profile.timings.precharge_timeout_s:
            self._fail(ControllerError.PRECHARGE)
            return
        target, rate = self.ev.battery.open_circuit_voltage_v(), self.profile.timings.voltage_rate_v_per_s
        if self.live:
            self.voltage_v = toward(self.voltage_v, target, rate * nominal_s)
        if abs(self.voltage_v - target) <= PRECHARGE_TOLERANCE_V:
            self.ev_contactors_closed = True
            self._next()

    def _current_demand(self, offer: Offer, nominal_s: float) -> None:
        if not offer.enabled or self.ev.full:
            self._stop()
            return
        self._enter_if(P.PAUSED_BY_EV if self.ev.paused else P.CHARGING)
        rate = self.profile.timings.ev_current_rate_a_per_s * nominal_s
        self.ev_target_a = toward(self.ev_target_a, self.ev.dc_current_request_a(), rate)
        self.current_a = self._deliverable_a()
        self.voltage_v = self.ev.battery.terminal_voltage_v(self.current_a)

    def _ramp_down(self, nominal_s: float) -> None:
        self.ev_target_a = 0.0
        self.current_a = toward(self.current_a, 0.0, self.profile.timings.ramp_down_a_per_s * nominal_s)
        if self.current_a > 0:
            return
        if self.profile.welding_detection and self.ev_contactors_closed:
            self._enter(P.WELDING_DETECTION)
        else:
            self.voltage_v = 0.0
            self._enter(P.FINISHED)

    def _welding_detection(self, faults: frozenset[EvFault]) -> None:
        welding_s = self.profile.timings.welding_s
        start_v = self.ev.battery.open_circuit_voltage_v()
        self.voltage_v = max(0.0, start_v * (1.0 - self.clock.in_phase_s / welding_s))
        if self.clock.in_phase_s < welding_s:
            return
        if EvFault.WELDING in faults:
            self._fail(ControllerError.CONTACTOR)
        else:
            self.voltage_v = 0.0
            self._enter(P.FINISHED)

    # ---- transitions -------------------------------------------------------------

    def _next(self) -> None:
        sequence = self.profile.sequence
        index = sequence.index(self.phase)
        self._enter(sequence[index + 1] if index + 1 < len(sequence) else P.CHARGING)

    def _enter(self, phase: SessionPhase) -> None:
        self.phase = phase
        self.clock.enter_phase()

    def _enter_if(self, phase: SessionPhase) -> None:
        if self.phase is not phase:
            self._enter(phase)

    def _stop(self) -> None:
        self._enter(P.STOPPING)

    def _fail(self, error: ControllerError) -> None:
        self.errors |= error
        self.current_a = self.ev_target_a = self.voltage_v = 0.0  # the controller cuts its output
        self._enter(P.FAULT)

    def _detected(self, faults: frozenset[EvFault]) -> ControllerError:
        errors = NO_ERRORS
        if EvFault.OVERTEMP in faults and self.phase is not P.FINISHED:
            errors |= ControllerError.OVERTEMPERATURE
        if EvFault.COMM_LOSS in faults and self.phase in _COMMUNICATING:
            errors |= ControllerError.EV_COMMUNICATION
        if EvFault.INSULATION in faults and self.phase in _OUTPUT_PHASES:
            errors |= ControllerError.INSULATION
        return errors

    # ---- what the controller reports ---------------------------------------------

    def _deliverable_a(self) -> float:
        if not self.live:
            return 0.0
        limits, current = self._limits, min(self.ev_target_a, RATED_CURRENT_A)
        if limits.current_a is not None:
            current = min(current, limits.current_a)
        if limits.power_w is not None:
            current = min(current, self.ev.battery.current_for_power_a(limits.power_w))
        return max(current, 0.0)

    def _ev_state(self) -> EvState:
        if self.phase is P.FAULT:
            return EvState.F
        if self.phase in _EV_DONE or not self.ev.wants_energy:
            return EvState.B
        return EvState.C

    def _ev_asks_w(self) -> float:
        if not self.parameters_known or self._ev_state() is not EvState.C:
            return 0.0
        return self.ev.dc_target_voltage_v() * self.ev.dc_current_request_a()

    def _demand(self) -> EvDemand:
        if not self.parameters_known:
            return EvDemand()
        battery = self.ev.battery
        maxima = {"max_voltage_v": battery.max_voltage_v, "max_current_a": round(self.ev.dc_max_current_a, 1)}
        if self.phase is P.PRECHARGE:
            return EvDemand(battery.open_circuit_voltage_v(), PRECHARGE_CURRENT_A, **maxima)
        if self.phase in (P.CHARGING, P.PAUSED_BY_EV):
            return EvDemand(battery.terminal_voltage_v(self.ev_target_a), self.ev_target_a, **maxima)
        return EvDemand(**maxima)
