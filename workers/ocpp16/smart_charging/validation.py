"""Whether a charging profile may be installed (OCPP 1.6 §3.13, §5.16, §7.8; ocpp16.md §2.13).

Each rule answers with the reason it refuses, for the log; SetChargingProfile then answers
Rejected. What is a CALLERROR instead (an unknown connector, a bad enum) is decided before a
profile is built (wire.py, handlers/smart_charging.py). The limits of the station
(ChargeProfileMaxStackLevel, ChargingScheduleMaxPeriods, ChargingScheduleAllowedChargingRateUnit)
come from the configuration keys and are passed in as `Capacity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from workers.ocpp16.smart_charging.model import (
    ChargingProfile,
    ChargingSchedule,
    Kind,
    Purpose,
    RateUnit,
    RunningTransaction,
)

MAX_PHASES = 3
UNIT_TOKENS = {RateUnit.amps: "Current", RateUnit.watts: "Power"}  # ChargingScheduleAllowedChargingRateUnit


@dataclass(frozen=True)
class Capacity:
    """What this charge point can hold, from its read-only configuration keys (§9.4)."""

    max_stack_level: int
    max_periods: int
    max_installed: int
    allowed_units: frozenset[RateUnit]

    @classmethod
    def from_tokens(cls, max_stack_level: int, max_periods: int, max_installed: int,
                    unit_tokens: tuple[str, ...]) -> Capacity:
        units = frozenset(unit for unit, token in UNIT_TOKENS.items() if token in unit_tokens)
        return cls(max_stack_level, max_periods, max_installed, units)


def schedule_problem(schedule: ChargingSchedule, capacity: Capacity) -> str | None:
    """Why this schedule cannot be followed, or None."""
    if schedule.unit not in capacity.allowed_units:
        return f"chargingRateUnit {schedule.unit} is not allowed here"
    periods = schedule.periods
    if not periods:
        return "the schedule has no periods"
    if len(periods) > capacity.max_periods:
        return f"{len(periods)} periods, ChargingScheduleMaxPeriods is {capacity.max_periods}"
    if periods[0].start_s != 0:
        return f"the first period starts at {periods[0].start_s} s, not 0"
    if any(later.start_s <= earlier.start_s for earlier, later in pairwise(periods)):
        return "startPeriod values are not strictly increasing"
    if any(period.limit < 0 for period in periods):
        return "a limit is negative"
    if any(p.number_phases is not None and not 1 <= p.number_phases <= MAX_PHASES for p in periods):
        return "numberPhases must be 1 to 3"
    if schedule.duration_s is not None and schedule.duration_s < 0:
        return "duration is negative"
    return None


def profile_problem(profile: ChargingProfile, capacity: Capacity) -> str | None:
    """Rules that need nothing but the profile itself and the station's capacity."""
    if not 0 <= profile.stack_level <= capacity.max_stack_level:
        return f"stackLevel {profile.stack_level} is outside 0..{capacity.max_stack_level}"
    if (profile.recurrency is None) != (profile.kind is not Kind.recurring):
        return "recurrencyKind goes with chargingProfileKind Recurring, and only with it"
    if profile.kind is Kind.recurring and profile.schedule.start is None:
        return "a Recurring profile needs startSchedule"
    if profile.valid_from and profile.valid_to and profile.valid_to <= profile.valid_from:
        return "validTo is not after validFrom"
    if profile.purpose is Purpose.charge_point_max_profile:
        if profile.connector_id != 0:
            return "ChargePointMaxProfile is only for connectorId 0"
        if profile.kind is Kind.relative:
            return "ChargePointMaxProfile cannot be Relative"
    return schedule_problem(profile.schedule, capacity)


def tx_profile_problem(profile: ChargingProfile, running: RunningTransaction | None) -> str | None:
    """A TxProfile from SetChargingProfile needs the transaction it names running on its connector."""
    if profile.connector_id == 0:
        return "a TxProfile needs a connector, not 0"
    if running is None:
        return f"no transaction runs on connector {profile.connector_id}"
    if profile.transaction_id is not None and profile.transaction_id != running.transaction_id:
        return (f"transactionId {profile.transaction_id} is not the one on connector "
                f"{profile.connector_id} ({running.transaction_id})")
    return None
