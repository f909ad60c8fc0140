"""Type 2 (IEC 61851-1) sessions: A -> B1 -> B2 -> C2, the PWM from the current limit (raised
at most every 5 s), the EV following it, pause/resume and the end of charging."""

from __future__ import annotations

import pytest

from bus.enums import Standard
from tests.sim.ev_drive import STEP_S, WAIT, plug
from workers.drivers.controllers.iec61851 import PilotState, amps_to_duty
from workers.drivers.controllers.interface import EvState, OutputLimits, SessionPhase
from workers.sim.ev_sessions import Offer
from workers.sim.ev_sessions.type2 import Type2Session

P = SessionPhase


def offer(power_w: float | None = None, current_a: float | None = None, *, live: bool = True) -> Offer:
    return Offer(enabled=True, live=live, limits=OutputLimits(power_w=power_w, current_a=current_a))


def session(drive) -> Type2Session:
    assert isinstance(drive.session, Type2Session)
    return drive.session


def test_plug_in_authorise_charge() -> None:
    drive = plug(Standard.TYPE2, max_kw=22.0)
    drive.run(5.0, WAIT)
    view = drive.session.view()
    assert (str(view.pilot), view.phase, view.ev_state) == ("B1", P.PLUGGED, EvState.C)  # presumed demand
    assert view.ev_max_power_w == 32 * 3 * 230.0  # the cable's rating: the EV cannot say more yet
    drive.step(offer(current_a=16.0))
    assert (str(drive.session.view().pilot), drive.phase) == ("B2", P.HANDSHAKE)
    assert drive.until(P.CHARGING, offer(current_a=16.0)) == pytest.approx(drive.began[1][1] + 1.0 + STEP_S)
    assert str(drive.session.view().pilot) == "C2"
    drive.run(3.0, offer(current_a=16.0))
    view = drive.session.view()
    assert view.present.current_a == pytest.approx(16.0)  # the PWM's current, below the EV's 32 A
    assert view.power_w == pytest.approx(16.0 * 3 * 230.0)
    assert view.pwm_current_a == 16.0 and view.soc is None


def test_the_duty_follows_the_current_limit_and_rises_at_most_every_5_s() -> None:
    drive = plug(Standard.TYPE2, max_kw=44.0)
    drive.until(P.CHARGING, offer(current_a=10.0))
    drive.run(2.0, offer(current_a=10.0))
    assert session(drive).duty_pct == pytest.approx(amps_to_duty(10.0))
    drive.run(1.0, offer(current_a=20.0))
    assert session(drive).pwm_amps == 10.0  # raised no sooner than 5 s after the last change
    drive.run(2.5, offer(current_a=20.0))
    assert session(drive).pwm_amps == 20.0
    drive.step(offer(current_a=8.0))
    assert session(drive).pwm_amps == 8.0  # lowered at once: the station's budget holds
    drive.run(2.0, offer(current_a=8.0))
    assert drive.session.view().present.current_a == pytest.approx(8.0)  # the EV followed


def test_a_power_limit_becomes_amps_per_phase_and_below_6_a_the_pwm_goes_off() -> None:
    drive = plug(Standard.TYPE2, max_kw=22.0)
    drive.step(offer(power_w=11_040.0))
    assert session(drive).pwm_amps == pytest.approx(16.0)
    drive.until(P.CHARGING, offer(power_w=11_040.0))
    drive.run(3.0, offer(power_w=11_040.0))
    drive.step(offer(power_w=3_000.0))  # 4.3 A: no PWM
    view = drive.session.view()
    assert (str(view.pilot), view.phase) == ("C1", P.STOPPING)  # the EV still brings its current down
    drive.run(3.0, offer(power_w=3_000.0))  # T_STEP_X1: within 3 s
    view = drive.session.view()
    assert (view.phase, view.ev_state, view.present.current_a) == (P.PLUGGED, EvState.C, 0.0)


def test_paused_ev_refuses_then_resumes_through_c1() -> None:
    drive = plug(Standard.TYPE2)
    drive.until(P.CHARGING, offer(current_a=16.0))
    drive.session.ev.paused = True
    drive.run(3.0, offer(current_a=16.0))
    view = drive.session.view()
    assert (str(view.pilot), view.phase, view.ev_state) == ("B2", P.PAUSED_BY_EV, EvState.B)
    assert view.ev_max_power_w == 0.0
    drive.run(1.0, offer(current_a=0.0))  # the station gives it nothing: PWM off
    assert (str(drive.session.view().pilot), drive.session.view().ev_state) == ("B1", EvState.B)
    drive.session.ev.paused = False
    drive.step(offer(current_a=0.0))
    assert (str(drive.session.view().pilot), drive.session.view().ev_state) == ("C1", EvState.C)
    drive.run(2.0, offer(current_a=16.0))
    assert drive.phase is P.CHARGING and drive.session.view().present.current_a > 0


def test_an_ev_that_never_closes_s2_is_taken_as_refusing() -> None:
    drive = plug(Standard.TYPE2, soc=80.0, target=80.0)  # already full
    drive.run(9.0, offer(current_a=16.0))
    assert drive.session.view().ev_state is EvState.C
    drive.run(1.5, offer(current_a=16.0))
    assert (drive.phase, drive.session.view().ev_state) == (P.PAUSED_BY_EV, EvState.B)


def test_no_current_without_a_closed_contactor() -> None:
    drive = plug(Standard.TYPE2)
    drive.until(P.CHARGING, offer(current_a=16.0, live=False))
    drive.run(2.0, offer(current_a=16.0, live=False))
    assert drive.session.view().power_w == 0.0


def test_station_stop_ends_the_pwm_and_the_ev_stops_drawing() -> None:
    drive = plug(Standard.TYPE2)
    drive.until(P.CHARGING, offer(current_a=16.0))
    drive.run(3.0, offer(current_a=16.0))
    drive.until(P.PLUGGED, Offer(enabled=False, live=True))
    assert drive.phases()[-2:] == [P.STOPPING, P.PLUGGED]
    assert drive.durations()[P.STOPPING] <= 3.0  # T_STEP_X1
    assert drive.session.view().pilot == PilotState("C", False)
