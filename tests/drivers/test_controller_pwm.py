"""IEC 61851-1 control pilot: the PWM duty tables both ways, and what a Type 2 state means."""

from __future__ import annotations

import pytest

from workers.drivers.controllers.iec61851 import (
    EV_RESPONSE_TIMEOUT_S,
    PilotState,
    Type2Memory,
    amps_to_duty,
    duty_to_amps,
    type2_state,
)
from workers.drivers.controllers.interface import EvState, SessionPhase


@pytest.mark.parametrize(("amps", "duty"), [
    (5.8, None),  # below 6 A: no valid PWM (X1)
    (5.9, 10.0),
    (6.0, 10.0),
    (6.1, 10.0),
    (16.0, 16.0 / 0.6),
    (32.0, 32.0 / 0.6),
    (51.0, 85.0),
    (52.0, 85.0),  # the norm's gap: 51..52.5 A clamped to 51 A
    (63.0, 63.0 / 2.5 + 64.0),
    (80.0, 96.0),
    (80.05, 97.0),
    (80.2, None),
])
def test_evse_side_amps_to_duty(amps, duty) -> None:
    result = amps_to_duty(amps)
    assert result == (None if duty is None else pytest.approx(duty))


@pytest.mark.parametrize(("duty", "amps"), [
    (5.0, None),  # digital communication, not a current
    (7.9, None),
    (8.0, 6.0),
    (9.9, 6.0),
    (10.0, 6.0),
    (50.0, 30.0),
    (85.0, 51.0),
    (90.0, 65.0),
    (96.0, 80.0),
    (96.5, 80.0),
    (97.5, None),
    (100.0, None),
])
def test_ev_side_duty_to_amps(duty, amps) -> None:
    result = duty_to_amps(duty)
    assert result == (None if amps is None else pytest.approx(amps))


@pytest.mark.parametrize("amps", [6.0, 10.0, 16.0, 20.0, 32.0, 40.0, 51.0, 53.0, 63.0, 80.0])
def test_the_ev_reads_back_the_current_the_evse_meant(amps) -> None:
    assert duty_to_amps(amps_to_duty(amps)) == pytest.approx(amps)


@pytest.mark.parametrize("text", ["G", "", "AB"])
def test_a_pilot_state_is_one_letter_a_to_f(text) -> None:
    with pytest.raises(ValueError):
        PilotState(text)


def _walk(*steps: tuple[str, bool, float]) -> tuple[EvState, SessionPhase]:
    memory, pilot = Type2Memory(), PilotState("A", False)
    for letter, pwm, now_s in steps:
        pilot = PilotState(letter, pwm)
        memory.observe(pilot, now_s)
    return type2_state(pilot, memory)


def test_a_plugged_ev_is_presumed_to_ask_until_it_refuses_the_pwm() -> None:
    assert _walk(("B", False, 0)) == (EvState.C, SessionPhase.PLUGGED)
    assert _walk(("B", False, 0), ("B", True, 1)) == (EvState.C, SessionPhase.HANDSHAKE)
    assert _walk(("B", True, 1), ("C", True, 2)) == (EvState.C, SessionPhase.CHARGING)
    full_after_charging = _walk(("B", True, 1), ("C", True, 2), ("B", True, 50))
    assert full_after_charging == (EvState.B, SessionPhase.PAUSED_BY_EV)
    never_answers = _walk(("B", True, 1), ("B", True, 1 + EV_RESPONSE_TIMEOUT_S))
    assert never_answers == (EvState.B, SessionPhase.PAUSED_BY_EV)


def test_a_refusing_ev_stays_refused_with_the_pwm_off_and_asks_again_with_s2() -> None:
    refused = (("B", True, 1), ("C", True, 2), ("B", True, 50), ("B", False, 51))
    assert _walk(*refused) == (EvState.B, SessionPhase.PAUSED_BY_EV)
    assert _walk(*refused, ("C", False, 60)) == (EvState.C, SessionPhase.PLUGGED)  # C1: resume
    assert _walk(*refused, ("A", False, 70), ("B", False, 71)) == (EvState.C, SessionPhase.PLUGGED)


@pytest.mark.parametrize("letter", ["E", "F"])
def test_e_and_f_are_faults(letter) -> None:
    assert _walk((letter, None, 0)) == (EvState.F, SessionPhase.FAULT)
