"""DC sessions (CCS, CHAdeMO, GB/T): each standard's phase sequence and timings, current
demand, EV-side pause/resume and the end of a session, in nominal seconds (tests/sim/ev_drive.py)."""

from __future__ import annotations

import pytest

from bus.enums import Standard
from tests.sim.ev_drive import CHARGE, STEP_S, WAIT, plug
from workers.drivers.controllers.interface import ControllerError, EvState, OutputLimits, SessionPhase
from workers.sim.ev_sessions import Offer
from workers.sim.ev_sessions.ccs import cable_check_voltage_v

P = SessionPhase


def about(*seconds: float):
    """Nominal durations to within one step (phase ends are checked once per step)."""
    return pytest.approx(seconds if len(seconds) > 1 else seconds[0], abs=STEP_S + 1e-6)

STOP = Offer(enabled=False, live=True, limits=OutputLimits(power_w=0.0))


def test_ccs_runs_handshake_at_plug_in_and_waits_for_authorisation() -> None:
    drive = plug(Standard.CCS)
    assert drive.phase is P.HANDSHAKE
    drive.run(30.0, WAIT)  # SLAC, SDP, SessionSetup... then "Authorization: Ongoing"
    view = drive.session.view()
    assert (view.phase, view.ev_state, view.ev_max_power_w, view.soc) == (P.HANDSHAKE, EvState.C, 0.0, None)
    authorised_at = drive.now_s
    assert drive.until(P.PARAMETER_EXCHANGE) == about(authorised_at + 0.1)


def test_ccs_sequence_and_timings() -> None:
    drive = plug(Standard.CCS, soc=20.0)
    drive.until(P.CHARGING)
    assert drive.phases() == [P.HANDSHAKE, P.PARAMETER_EXCHANGE, P.CABLE_CHECK, P.PRECHARGE, P.CHARGING]
    took = drive.durations()
    assert took[P.HANDSHAKE] == about(3.0)
    assert took[P.PARAMETER_EXCHANGE] == about(1.0)
    assert took[P.CABLE_CHECK] == about(4.0)  # test voltage reached within it (2.3 s at 200 V/s)
    ocv = drive.session.ev.battery.open_circuit_voltage_v()
    assert took[P.PRECHARGE] == about((ocv - 10.0) / 200.0)  # well inside 7 s
    view = drive.session.view()
    assert view.soc == 20.0 and view.demand.max_voltage_v == 410.0


def test_ccs_cable_check_runs_at_the_iec_test_voltage() -> None:
    drive = plug(Standard.CCS)
    drive.until(P.CABLE_CHECK)
    peak = 0.0
    while drive.phase is P.CABLE_CHECK:
        drive.step()
        peak = max(peak, drive.session.view().present.voltage_v or 0.0)
    assert peak == pytest.approx(460.0)  # EV max 410 V -> min(500, 410 + 50, 1000)
    assert drive.session.view().present.voltage_v < 60.0  # discharged before precharge


@pytest.mark.parametrize(("ev_max_v", "evse_max_v", "test_v"), [
    (410.0, 1000.0, 460.0), (480.0, 1000.0, 500.0), (500.0, 520.0, 500.0), (500.0, 500.0, 500.0),
    (820.0, 1000.0, 902.0), (850.0, 920.0, 920.0),
])
def test_cable_check_voltage_formula(ev_max_v, evse_max_v, test_v) -> None:
    assert cable_check_voltage_v(ev_max_v, evse_max_v) == pytest.approx(test_v)


def test_chademo_waits_for_the_start_then_runs_its_sequence() -> None:
    drive = plug(Standard.CHADEMO)
    drive.run(10.0, WAIT)
    assert drive.phase is P.PLUGGED and drive.session.view().ev_state is EvState.C
    drive.until(P.CHARGING)
    assert drive.phases() == [P.PLUGGED, P.HANDSHAKE, P.PARAMETER_EXCHANGE, P.CABLE_CHECK, P.PRECHARGE,
                              P.CHARGING]
    took = drive.durations()
    assert (took[P.HANDSHAKE], took[P.PARAMETER_EXCHANGE], took[P.CABLE_CHECK]) == about(1.0, 2.0, 3.0)


def test_gbt_tests_insulation_before_the_parameters_and_has_no_welding_detection() -> None:
    drive = plug(Standard.GBT)
    drive.until(P.CHARGING)
    assert drive.phases() == [P.PLUGGED, P.HANDSHAKE, P.CABLE_CHECK, P.PARAMETER_EXCHANGE, P.PRECHARGE,
                              P.CHARGING]
    took = drive.durations()
    assert (took[P.HANDSHAKE], took[P.CABLE_CHECK], took[P.PARAMETER_EXCHANGE]) == about(1.5, 4.0, 2.0)
    drive.run(5.0)
    drive.until(P.FINISHED, STOP)
    assert drive.phases()[-2:] == [P.STOPPING, P.FINISHED]


@pytest.mark.parametrize("standard", [Standard.CCS, Standard.CHADEMO])
def test_a_station_stop_ramps_down_then_detects_welding(standard) -> None:
    drive = plug(standard)
    drive.until(P.CHARGING)
    drive.run(10.0)
    assert drive.session.view().present.current_a > 100
    drive.until(P.FINISHED, STOP)
    assert drive.phases()[-3:] == [P.STOPPING, P.WELDING_DETECTION, P.FINISHED]
    took = drive.durations()
    assert took[P.STOPPING] <= 1.1  # 250 A/s from at most 244 A
    assert took[P.WELDING_DETECTION] == about(1.5 if standard is Standard.CCS else 1.0)
    view = drive.session.view()
    assert (view.ev_state, view.power_w, view.present.voltage_v) == (EvState.B, 0.0, 0.0)


def test_current_demand_ramps_up_and_stays_within_every_limit() -> None:
    drive = plug(Standard.CCS, soc=20.0)
    drive.until(P.CHARGING)
    drive.step()
    assert drive.session.view().present.current_a == pytest.approx(10.0)  # EV raises 100 A/s
    drive.run(5.0, Offer(enabled=True, live=True, limits=OutputLimits(power_w=200_000.0, current_a=150.0)))
    view = drive.session.view()
    assert view.present.current_a == pytest.approx(150.0)
    assert view.demand.target_current_a == pytest.approx(100_000 / 410)
    drive.run(1.0, Offer(enabled=True, live=True, limits=OutputLimits(power_w=30_000.0)))
    view = drive.session.view()
    assert view.power_w == pytest.approx(30_000.0, rel=1e-3)
    assert view.ev_max_power_w == pytest.approx(view.demand.target_voltage_v * (100_000 / 410))


def test_energy_flows_only_while_the_output_is_live() -> None:
    drive = plug(Standard.CCS)
    drive.until(P.CHARGING)
    drive.run(2.0, Offer(enabled=True, live=False, limits=OutputLimits(power_w=50_000.0)))
    assert drive.session.view().power_w == 0.0 and drive.phase is P.CHARGING


def test_the_ev_stops_at_its_target_soc() -> None:
    drive = plug(Standard.CCS, soc=79.0, target=80.0, capacity_kwh=0.01)
    drive.until(P.FINISHED, limit_s=200.0)
    assert P.CHARGING in drive.phases() and drive.session.ev.soc >= 80.0
    assert drive.session.view().ev_state is EvState.B


def test_ev_side_pause_and_resume() -> None:
    drive = plug(Standard.CCS)
    drive.until(P.CHARGING)
    drive.run(4.0)
    drive.session.ev.paused = True
    drive.run(5.0)
    view = drive.session.view()
    assert (view.phase, view.ev_state, view.present.current_a, view.ev_max_power_w) == (
        P.PAUSED_BY_EV, EvState.B, 0.0, 0.0)
    drive.session.ev.paused = False
    drive.run(3.0)
    view = drive.session.view()
    assert (view.phase, view.ev_state) == (P.CHARGING, EvState.C) and view.present.current_a > 100


def test_precharge_fails_when_the_output_cannot_reach_the_battery_voltage() -> None:
    drive = plug(Standard.CCS)
    drive.until(P.PRECHARGE)
    started = drive.now_s
    drive.until(P.FAULT, Offer(enabled=True, live=False))  # contactor opened after the cable check
    assert drive.now_s - started == about(7.0)
    assert drive.session.view().errors == ControllerError.PRECHARGE


def test_cable_check_gives_up_without_a_closed_contactor() -> None:
    drive = plug(Standard.CCS)
    drive.until(P.CABLE_CHECK)
    started = drive.now_s
    drive.until(P.FAULT, Offer(enabled=True, live=False))
    assert drive.now_s - started == about(40.0)
    view = drive.session.view()
    assert (view.errors, view.ev_state) == (ControllerError.SEQUENCE_TIMEOUT, EvState.F)


def test_a_battery_above_the_chargers_range_is_incompatible() -> None:
    drive = plug(Standard.CHADEMO, max_voltage_v=850.0)
    drive.until(P.FAULT, Offer(enabled=True, live=True, limits=OutputLimits(voltage_v=500.0)))
    assert drive.phases()[-2:] == [P.PARAMETER_EXCHANGE, P.FAULT]
    assert drive.session.view().errors == ControllerError.INCOMPATIBLE


def test_the_stations_disable_before_charging_ends_the_session_without_current() -> None:
    drive = plug(Standard.GBT)
    drive.until(P.CABLE_CHECK)
    drive.until(P.FINISHED, STOP)
    assert drive.phases()[-2:] == [P.STOPPING, P.FINISHED]
    assert CHARGE.enabled and drive.session.view().power_w == 0.0
