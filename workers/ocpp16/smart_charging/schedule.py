"""The composite schedule, computed purely: no I/O, no clock of its own (OCPP 1.6 §3.13).

Why pure: the same few rules feed both GetCompositeSchedule and the limits smartw obeys, and
the safety invariant (ARCHITECTURE.md, invariant 1) is checked against them with hypothesis.

Rules (ocpp16.md §2.13):
- A profile is *in force* at an instant when it is valid (validFrom <= t < validTo) and its
  schedule covers t: Absolute from startSchedule, Relative (and Absolute without startSchedule,
  §7.12) from the start of the connector's transaction, or from the window's start when none
  runs; Recurring from startSchedule, every day or week, a duration longer than the cycle cut to
  it. A schedule without duration never ends; past its duration it no longer applies, so a lower
  stack level (or nothing) takes over. The last period holds until the duration ends.
- The *winner* of a purpose is the in-force profile with the highest stackLevel.
- A connector's limit is the lower of the ChargePointMaxProfile winner and the TxProfile winner,
  or, when no TxProfile is in force, the TxDefaultProfile winner (the connector's own
  TxDefaultProfiles override those set on connector 0).
- Limits compare in W: A per phase x phases x 230 V with the phases of the scope (an AC
  connector's wired phases, 3 for a DC connector and for the station: smartw's rule,
  workers/smartw/limits.py), and fewer when the period's numberPhases says so; a larger
  numberPhases never scales a limit up (errata 3.34).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from workers.ocpp16.smart_charging.model import (
    ChargingProfile,
    Kind,
    Purpose,
    RateUnit,
    Recurrency,
    SchedulePeriod,
)

PHASE_VOLTAGE_V = 230.0  # phase to neutral, as smartw counts an A-per-phase limit
DEFAULT_PHASES = 3  # numberPhases when a period gives none (§7.13)
CYCLES = {Recurrency.daily: timedelta(days=1), Recurrency.weekly: timedelta(days=7)}
MAX_SEGMENTS = 20_000  # a window with more instants of change than this is not computed


@dataclass(frozen=True)
class Scope:
    """One connector (or 0, the station) as the schedule sees it."""

    connector_id: int
    phases: int  # phases an A-per-phase limit counts
    max_w: float  # the hardware ceiling of station.toml: what "no limit" means in a report


@dataclass(frozen=True)
class Limit:
    watts: float
    purpose: Purpose | None  # the purpose that sets it; None: a sum over connectors
    unit: RateUnit  # the unit of the profile that sets it


@dataclass(frozen=True)
class Segment:
    start: datetime
    end: datetime | None  # None: holds for ever
    limit: Limit | None  # None: no profile limits this stretch


@dataclass(frozen=True)
class Situation:
    """Everything a computation needs. TxProfiles in `profiles` are only those of the running
    (or about to start) transaction of their connector."""

    profiles: tuple[ChargingProfile, ...]
    tx_starts: Mapping[int, datetime]  # connector -> start of its transaction
    idle_start: datetime  # where Relative schedules start on a connector without a transaction


class TooManyChanges(ValueError):
    """The window holds more than MAX_SEGMENTS changes of limit."""


Evaluation = tuple[Limit | None, datetime | None]  # the limit at an instant, and when it may change


def to_watts(limit: float, unit: RateUnit, number_phases: int | None, scope_phases: int) -> float:
    if unit is RateUnit.watts:
        return limit
    return limit * min(number_phases or DEFAULT_PHASES, scope_phases) * PHASE_VOLTAGE_V


def from_watts(watts: float, unit: RateUnit, scope_phases: int) -> float:
    return watts if unit is RateUnit.watts else watts / (scope_phases * PHASE_VOLTAGE_V)


def earliest(*moments: datetime | None) -> datetime | None:
    present = [moment for moment in moments if moment is not None]
    return min(present) if present else None


# ---- one profile ---------------------------------------------------------------------------

def _anchor(profile: ChargingProfile, tx_start: datetime) -> datetime:
    start = profile.schedule.start
    if profile.kind is Kind.relative or start is None:
        return tx_start
    return start


def _schedule_at(profile: ChargingProfile, anchor: datetime,
                 at: datetime) -> tuple[SchedulePeriod | None, datetime | None]:
    schedule = profile.schedule
    span = None if schedule.duration_s is None else timedelta(seconds=schedule.duration_s)
    next_cycle = None
    if profile.kind is Kind.recurring and profile.recurrency is not None:
        cycle = CYCLES[profile.recurrency]
        start = anchor + cycle * ((at - anchor) // cycle)
        span, next_cycle = (cycle if span is None else min(span, cycle)), start + cycle
    else:
        start = anchor
        if at < start:
            return None, start
    offset_s = (at - start).total_seconds()
    if span is not None and at - start >= span:
        return None, next_cycle
    current = [period for period in schedule.periods if period.start_s <= offset_s]
    following = [period for period in schedule.periods if period.start_s > offset_s]
    change = None if span is None else start + span
    if following:
        change = earliest(change, start + timedelta(seconds=following[0].start_s))
    return (current[-1] if current else None), change


def period_at(profile: ChargingProfile, at: datetime,
              tx_start: datetime) -> tuple[SchedulePeriod | None, datetime | None]:
    """The period of `profile` in force at `at` (None: it does not apply then) and the next
    instant after `at` when that may change (None: never)."""
    if profile.valid_to is not None and at >= profile.valid_to:
        return None, None
    if profile.valid_from is not None and at < profile.valid_from:
        return None, profile.valid_from
    period, change = _schedule_at(profile, _anchor(profile, tx_start), at)
    return period, earliest(change, profile.valid_to)


def _winner(profiles: Iterable[ChargingProfile], scope: Scope, at: datetime,
            tx_start: datetime) -> Evaluation:
    best: tuple[int, float] | None = None
    limit, change = None, None
    for profile in profiles:
        period, next_change = period_at(profile, at, tx_start)
        change = earliest(change, next_change)
        if period is None:
            continue
        watts = to_watts(period.limit, profile.schedule.unit, period.number_phases, scope.phases)
        rank = (profile.stack_level, -watts)  # highest stack level; a tie goes to the lower limit
        if best is None or rank > best:
            best, limit = rank, Limit(watts, profile.purpose, profile.schedule.unit)
    return limit, change


def lower(*limits: Limit | None) -> Limit | None:
    present = [limit for limit in limits if limit is not None]
    return min(present, key=lambda limit: limit.watts) if present else None


# ---- scopes --------------------------------------------------------------------------------

def _of(situation: Situation, purpose: Purpose, connector_id: int) -> list[ChargingProfile]:
    return [p for p in situation.profiles if p.purpose is purpose and p.connector_id == connector_id]


def station_max(situation: Situation, station: Scope, at: datetime) -> Evaluation:
    """The ChargePointMaxProfile winner: what the whole station may draw."""
    return _winner(_of(situation, Purpose.charge_point_max_profile, 0), station, at, situation.idle_start)


def transaction_limit(situation: Situation, scope: Scope, at: datetime) -> Evaluation:
    """The TxProfile winner, else the TxDefaultProfile winner, of one connector."""
    tx_start = situation.tx_starts.get(scope.connector_id, situation.idle_start)
    tx, tx_change = _winner(_of(situation, Purpose.tx_profile, scope.connector_id), scope, at, tx_start)
    own, own_change = _winner(_of(situation, Purpose.tx_default_profile, scope.connector_id),
                              scope, at, tx_start)
    shared, shared_change = _winner(_of(situation, Purpose.tx_default_profile, 0), scope, at, tx_start)
    chosen = tx if tx is not None else own if own is not None else shared
    return chosen, earliest(tx_change, own_change, shared_change)


def connector_limit(situation: Situation, scope: Scope, at: datetime) -> Evaluation:
    """A connector's composite limit at `at`."""
    cap, cap_change = station_max(situation, scope, at)
    tx, tx_change = transaction_limit(situation, scope, at)
    return lower(cap, tx), earliest(cap_change, tx_change)


def station_total(situation: Situation, station: Scope, connectors: Sequence[Scope],
                  at: datetime) -> Evaluation:
    """The expected grid draw (GetCompositeSchedule for connector 0): the ChargePointMaxProfile
    winner, and at most the sum of every connector's limit (its hardware ceiling where no
    profile limits it)."""
    cap, change = station_max(situation, station, at)
    total_w = 0.0
    for scope in connectors:
        limit, connector_change = transaction_limit(situation, scope, at)
        total_w += min(scope.max_w, math.inf if limit is None else limit.watts)
        change = earliest(change, connector_change)
    if total_w >= station.max_w:
        return cap, change
    return lower(cap, Limit(total_w, None, RateUnit.watts)), change


# ---- windows -------------------------------------------------------------------------------

def segments(evaluate: Callable[[datetime], Evaluation], start: datetime, until: datetime) -> list[Segment]:
    """The limit from `start` on, as segments of equal limit, until the one that covers
    `until`; that last one keeps its real end. Raises TooManyChanges past MAX_SEGMENTS."""
    found: list[Segment] = []
    at = start
    for _ in range(MAX_SEGMENTS):
        limit, change = evaluate(at)
        if found and found[-1].limit == limit:
            found[-1] = Segment(found[-1].start, change, limit)
        else:
            found.append(Segment(at, change, limit))
        if change is None or change > until:
            return found
        at = change
    raise TooManyChanges(f"more than {MAX_SEGMENTS} limit changes before {until.isoformat()}")
