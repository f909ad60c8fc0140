"""EV faults in a session: each acts where its standard would notice it and stops the output."""

from __future__ import annotations

import pytest

from bus.enums import Standard
from tests.sim.ev_drive import WAIT, plug
from workers.drivers.controllers.interface import ControllerError, EvState, OutputLimits, SessionPhase
from workers.sim.ev_sessions import EvFault, Offer

P = SessionPhase
AC = Offer(enabled=True, live=True, limits=OutputLimits(current_a=16.0))


def _faulted_with(drive, errors: ControllerError) -> None:
    view = drive.session.view()
    assert (view.phase, view.ev_state, view.errors) == (P.FAULT, EvState.F, errors)
    assert (view.power_w, view.present.current_a) == (0.0, 0.0)


def test_diode_fail_is_found_when_the_pwm_comes_on() -> None:
    drive = plug(Standard.TYPE2)
    diode = frozenset({EvFault.DIODE_FAIL})
    drive.run(3.0, WAIT, diode)
    assert drive.phase is P.PLUGGED  # no PWM, no negative half to check
    drive.step(AC, diode)
    _faulted_with(drive, ControllerError.DIODE)
    assert str(drive.session.view().pilot) == "F1"
    drive.run(2.0, AC)  # latched: the session stays stopped once the fault is gone
    assert drive.phase is P.FAULT


def test_insulation_fault_fails_the_cable_check() -> None:
    drive = plug(Standard.CCS)
    insulation = frozenset({EvFault.INSULATION})
    drive.until(P.FAULT, faults=insulation)
    assert drive.phases()[-2:] == [P.CABLE_CHECK, P.FAULT]
    _faulted_with(drive, ControllerError.INSULATION)


def test_insulation_fault_while_charging_trips_at_once() -> None:
    drive = plug(Standard.GBT)
    drive.until(P.CHARGING)
    drive.run(3.0)
    drive.step(faults=frozenset({EvFault.INSULATION}))
    _faulted_with(drive, ControllerError.INSULATION)


@pytest.mark.parametrize("standard", [Standard.TYPE2, Standard.CCS, Standard.CHADEMO])
def test_overtemperature_stops_charging(standard) -> None:
    drive = plug(standard)
    offer = AC if standard is Standard.TYPE2 else Offer(True, True, OutputLimits(power_w=50_000.0))
    drive.until(P.CHARGING, offer)
    drive.run(3.0, offer)
    drive.step(offer, frozenset({EvFault.OVERTEMP}))
    _faulted_with(drive, ControllerError.OVERTEMPERATURE)


def test_comm_loss_counts_only_once_the_ev_communicates() -> None:
    lost = frozenset({EvFault.COMM_LOSS})
    chademo = plug(Standard.CHADEMO)
    chademo.run(3.0, WAIT, lost)
    assert chademo.phase is P.PLUGGED  # no CAN before the charger starts the session
    chademo.step(faults=lost)
    chademo.step(faults=lost)
    _faulted_with(chademo, ControllerError.EV_COMMUNICATION)
    ccs = plug(Standard.CCS)
    ccs.step(WAIT, lost)  # CCS talks from plug-in on (SLAC)
    _faulted_with(ccs, ControllerError.EV_COMMUNICATION)


def test_comm_loss_on_type2_is_a_lost_pilot() -> None:
    drive = plug(Standard.TYPE2)
    drive.until(P.CHARGING, AC)
    drive.step(AC, frozenset({EvFault.COMM_LOSS}))
    _faulted_with(drive, ControllerError.EV_COMMUNICATION)


def test_welding_detection_finds_a_welded_contactor() -> None:
    drive = plug(Standard.CCS)
    drive.until(P.CHARGING)
    drive.run(2.0)
    drive.until(P.FAULT, Offer(enabled=False, live=True), faults=frozenset({EvFault.WELDING}))
    assert drive.phases()[-3:] == [P.STOPPING, P.WELDING_DETECTION, P.FAULT]
    _faulted_with(drive, ControllerError.CONTACTOR)
