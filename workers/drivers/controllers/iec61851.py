"""IEC 61851-1 control pilot: PWM duty <-> current, and what a Type 2 pilot state means.

Shared by the AC drivers (which read a pilot state) and the simulated Type 2 EV (which
decodes the duty it sees), so both sides of the pilot agree (reference/hardware.md §5.1).

A basic-charging EV cannot say whether it wants energy before the PWM is on, so a freshly
plugged EV is *presumed* to ask (state C for smartw) until it refuses the offered PWM: it
stays in B2 after having charged (full or paused) or for `EV_RESPONSE_TIMEOUT_S`.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.drivers.controllers.interface import EvState, SessionPhase

MIN_CURRENT_A = 6.0  # below this no PWM may be offered (state X1, PWM off)
PWM_MAX_UPDATE_INTERVAL_S = 5.0  # EVerest IEC_PWM_MAX_UPDATE_INTERVAL: no faster duty changes
EV_RESPONSE_TIMEOUT_S = 10.0  # an EV still in B2 this long after the PWM came on refuses energy


def amps_to_duty(amps: float) -> float | None:
    """EVSE side (EVerest `ampere_to_duty_cycle`): duty % for a current limit, None when no
    valid PWM exists for it (then the PWM stays off)."""
    if amps < 5.9 or amps > 80.1:
        return None
    if amps <= 6.1:
        return 10.0
    if amps < 52.5:
        return min(amps, 51.0) / 0.6  # 51..52.5 A: the norm's gap, clamped to 51 A
    if amps <= 80.0:
        return amps / 2.5 + 64.0
    return 97.0


def duty_to_amps(duty_pct: float) -> float | None:
    """EV side (IEC 61851-1 Annex A): the current a duty allows, None = no charging allowed
    (also for 3..7 %, which asks for digital communication instead)."""
    if 8.0 <= duty_pct < 10.0:
        return 6.0
    if 10.0 <= duty_pct <= 85.0:
        return duty_pct * 0.6
    if 85.0 < duty_pct <= 96.0:
        return (duty_pct - 64.0) * 2.5
    if 96.0 < duty_pct <= 97.0:
        return 80.0
    return None


@dataclass(frozen=True)
class PilotState:
    """An IEC 61851 state as controllers show it: letter A..F and whether the PWM is on
    ('B2' = letter B, PWM on); `pwm_on` None = the controller does not say."""

    letter: str
    pwm_on: bool | None = None

    def __post_init__(self) -> None:
        if self.letter not in "ABCDEF" or len(self.letter) != 1:
            raise ValueError(f"pilot state {self.letter!r} is not one of A..F")

    def __str__(self) -> str:
        return self.letter + ("" if self.pwm_on is None else "2" if self.pwm_on else "1")


@dataclass
class Type2Memory:
    """What a Type 2 controller remembers within one plug-in to tell a presumed demand from
    a refusal (module docstring). Reset when the EV leaves (state A)."""

    charged: bool = False  # reached C2/D2 since plug-in
    refused: bool = False  # the EV declined the offered PWM
    b2_since_s: float | None = None  # clock time the EV was first seen in B2 without charging

    def observe(self, pilot: PilotState, now_s: float) -> None:
        letter, pwm = pilot.letter, pilot.pwm_on
        if letter == "A":
            self.charged, self.refused, self.b2_since_s = False, False, None
        elif letter in "CD":
            self.refused, self.b2_since_s = False, None
            self.charged = self.charged or bool(pwm)
        elif letter == "B" and pwm:
            if self.b2_since_s is None:
                self.b2_since_s = now_s
            if self.charged or now_s - self.b2_since_s >= EV_RESPONSE_TIMEOUT_S:
                self.refused = True
        elif letter == "B" and pwm is False:
            self.b2_since_s = None  # the EV's response time starts again with the next offer


def type2_state(pilot: PilotState, memory: Type2Memory) -> tuple[EvState, SessionPhase]:
    """The EV state smartw sees and the session phase, for a Type 2 pilot state."""
    letter = pilot.letter
    if letter in "EF":
        return EvState.F, SessionPhase.FAULT
    if letter == "A":
        return EvState.A, SessionPhase.IDLE
    if letter in "CD":
        return EvState.C, SessionPhase.CHARGING if pilot.pwm_on else SessionPhase.PLUGGED
    if memory.refused:
        return EvState.B, SessionPhase.PAUSED_BY_EV
    return EvState.C, SessionPhase.HANDSHAKE if pilot.pwm_on else SessionPhase.PLUGGED
