"""The composite schedule, computed purely (workers/ocpp16/smart_charging/schedule.py and the
modules around it): stacking, purposes, kinds, recurrence, validity, units, the report for
GetCompositeSchedule and what the publisher writes. Ends with hypothesis properties: safety
invariant 1 of ARCHITECTURE.md (the limit never exceeds the ChargePointMaxProfile in force, nor
the Tx/TxDefault profile in force) and never a higher limit on the bus than the schedule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.ocpp16.smart_charging.composite import CompositeReport, build_report
from workers.ocpp16.smart_charging.model import (
    ChargingProfile,
    ChargingSchedule,
    Kind,
    Purpose,
    RateUnit,
    Recurrency,
    RunningTransaction,
    SchedulePeriod,
    WireFormatError,
    anchored_at_receipt,
    parse_profile,
)
from workers.ocpp16.smart_charging.publisher import plan
from workers.ocpp16.smart_charging.schedule import (
    Evaluation,
    Limit,
    Scope,
    Segment,
    Situation,
    TooManyChanges,
    connector_limit,
    period_at,
    segments,
    station_total,
    to_watts,
)
from workers.ocpp16.smart_charging.validation import Capacity, profile_problem, tx_profile_problem

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
THREE_PHASE = Scope(1, 3, 50_000.0)
ONE_PHASE = Scope(2, 1, 7_360.0)
STATION = Scope(0, 3, 100_000.0)
W_PER_A_3PH = 3 * 230.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def profile(profile_id: int, purpose: Purpose, periods: list[tuple[int, float]], *, connector: int = 1,
            stack: int = 0, kind: Kind = Kind.absolute, unit: RateUnit = RateUnit.amps,
            start: datetime | None = T0, duration: int | None = None, recurrency: Recurrency | None = None,
            valid_from: datetime | None = None, valid_to: datetime | None = None,
            phases: int | None = None) -> ChargingProfile:
    schedule = ChargingSchedule(unit, tuple(SchedulePeriod(s, limit, phases) for s, limit in periods),
                                duration, start if kind is not Kind.relative else None)
    return ChargingProfile(profile_id, connector, stack, purpose, kind, schedule, recurrency,
                           valid_from=valid_from, valid_to=valid_to)


def amps_at(profiles: list[ChargingProfile], seconds: float, scope: Scope = THREE_PHASE,
            tx_start: datetime | None = None) -> float | None:
    starts = {} if tx_start is None else {scope.connector_id: tx_start}
    limit, _ = connector_limit(Situation(tuple(profiles), starts, T0), scope, at(seconds))
    return None if limit is None else round(limit.watts / (scope.phases * 230.0), 3)


# ---- stacking and purposes -----------------------------------------------------------------

def test_higher_stack_level_wins_until_its_duration_ends_then_the_lower_one_shows() -> None:
    """TC_072_CS: stack 1 for 150 s over stack 0's 6/8/10 A steps."""
    base = profile(1, Purpose.tx_default_profile, [(0, 6), (100, 8), (200, 10)], duration=400)
    top = profile(2, Purpose.tx_default_profile, [(0, 10)], stack=1, duration=150)
    assert [amps_at([base, top], s) for s in (0, 120, 149, 150, 199, 200, 399, 400)] == \
        [10, 10, 10, 8, 8, 10, 10, None]


def test_tx_profile_overrides_tx_default_and_charge_point_max_caps_both() -> None:
    """TC_066_CS: composite = min(ChargePointMax, TxProfile if present else TxDefault)."""
    cap = profile(1, Purpose.charge_point_max_profile, [(0, 10)], connector=0, duration=86_400)
    default = profile(2, Purpose.tx_default_profile, [(0, 6), (100, 16)], duration=400)
    tx = profile(3, Purpose.tx_profile, [(0, 8), (50, 12)], duration=300)
    assert [amps_at([cap, default], s) for s in (0, 100)] == [6, 10]
    assert [amps_at([cap, default, tx], s) for s in (0, 50, 299, 300, 350)] == [8, 10, 10, 10, 10]
    assert amps_at([default, tx], 350) == 16  # TxProfile over: TxDefault again


def test_connector_tx_default_overrides_the_station_wide_default() -> None:
    shared = profile(1, Purpose.tx_default_profile, [(0, 20)], connector=0, stack=5)
    own = profile(2, Purpose.tx_default_profile, [(0, 25)], connector=1, stack=0, duration=60)
    assert amps_at([shared, own], 0) == 25  # higher than the shared one, still it wins on connector 1
    assert amps_at([shared, own], 0, scope=replace(ONE_PHASE, connector_id=3)) == 20
    assert amps_at([shared, own], 60) == 20  # own one over: the shared default again


def test_without_duration_a_profile_never_falls_back() -> None:
    base = profile(1, Purpose.tx_default_profile, [(0, 6)])
    top = profile(2, Purpose.tx_default_profile, [(0, 16), (10, 12)], stack=1)
    assert amps_at([base, top], 10 * 86_400) == 12


def test_periods_past_the_duration_are_ignored() -> None:
    p = profile(1, Purpose.tx_default_profile, [(0, 6), (500, 32)], duration=300)
    assert [amps_at([p], s) for s in (299, 300, 600)] == [6, None, None]


# ---- kinds ----------------------------------------------------------------------------------

def test_relative_schedule_starts_with_the_transaction_or_now_without_one() -> None:
    p = profile(1, Purpose.tx_profile, [(0, 6), (60, 16)], kind=Kind.relative)
    assert amps_at([p], 30, tx_start=at(-40)) == 16  # 70 s into the transaction
    assert amps_at([p], 30) == 6  # no transaction: starts at the window's start (T0)


def test_absolute_without_start_schedule_is_relative_to_the_transaction() -> None:
    """OCPP 1.6 §7.12: startSchedule absent -> relative to the start of charging."""
    p = profile(1, Purpose.tx_default_profile, [(0, 6), (60, 16)], start=None)
    assert amps_at([p], 0, tx_start=at(-100)) == 16


def test_absolute_schedule_does_not_apply_before_its_start() -> None:
    p = profile(1, Purpose.tx_default_profile, [(0, 6)], start=at(100))
    assert [amps_at([p], 99), amps_at([p], 100)] == [None, 6]


def test_daily_recurrence_repeats_and_a_shorter_duration_falls_back() -> None:
    night = profile(1, Purpose.tx_default_profile, [(0, 32), (3600, 16)], stack=1, kind=Kind.recurring,
                    recurrency=Recurrency.daily, duration=7200)
    base = profile(2, Purpose.tx_default_profile, [(0, 10)])
    assert [amps_at([night, base], s) for s in (0, 3600, 7200, 86_400 + 10, 86_400 + 3600)] == \
        [32, 16, 10, 32, 16]
    assert amps_at([night, base], -86_400 + 1800) == 32  # the cycle before startSchedule repeats too


def test_weekly_recurrence_ignores_periods_beyond_the_week() -> None:
    week = 7 * 86_400
    p = profile(1, Purpose.tx_default_profile, [(0, 6), (week + 10, 32)], kind=Kind.recurring,
                recurrency=Recurrency.weekly, duration=2 * week)
    assert [amps_at([p], s) for s in (week - 1, week + 20)] == [6, 6]


def test_valid_from_and_valid_to_bound_a_profile() -> None:
    p = profile(1, Purpose.tx_default_profile, [(0, 6)], valid_from=at(10), valid_to=at(20))
    assert [amps_at([p], s) for s in (9, 10, 19, 20)] == [None, 6, 6, None]
    assert period_at(p, at(0), T0) == (None, at(10))
    assert period_at(p, at(10), T0)[1] == at(20)


# ---- units ----------------------------------------------------------------------------------

def test_amps_count_the_scope_phases_and_number_phases_never_scales_up() -> None:
    """errata 3.34: numberPhases beyond what the connector has -> the limit as given."""
    assert to_watts(16, RateUnit.amps, None, 3) == 16 * W_PER_A_3PH
    assert to_watts(16, RateUnit.amps, 3, 1) == 16 * 230.0
    assert to_watts(16, RateUnit.amps, 1, 3) == 16 * 230.0
    assert to_watts(11_000, RateUnit.watts, 1, 3) == 11_000


def test_a_power_cap_and_a_current_default_compare_in_watts() -> None:
    cap = profile(1, Purpose.charge_point_max_profile, [(0, 7_000)], connector=0, unit=RateUnit.watts)
    default = profile(2, Purpose.tx_default_profile, [(0, 16)])
    limit, _ = connector_limit(Situation((cap, default), {}, T0), THREE_PHASE, T0)
    assert limit == Limit(7_000, Purpose.charge_point_max_profile, RateUnit.watts)


# ---- the GetCompositeSchedule report ----------------------------------------------------------

def _report(profiles: list[ChargingProfile], duration: int, unit: RateUnit | None,
            scope: Scope = THREE_PHASE) -> CompositeReport:
    situation = Situation(tuple(profiles), {}, T0)
    found = segments(lambda t: connector_limit(situation, scope, t), T0, at(duration))
    return build_report(found, T0, duration, unit, scope)


def test_report_converts_units_rounds_to_a_tenth_and_fills_gaps_with_the_hardware_ceiling() -> None:
    p = profile(1, Purpose.tx_default_profile, [(0, 6), (100, 8.3)], duration=200)
    assert _report([p], 400, None).periods == ((0, 6.0), (100, 8.3), (200, 72.5))  # 50 kW at 3 x 230 V
    assert _report([p], 400, RateUnit.watts).periods == ((0, 4140.0), (100, 5727.0), (200, 50_000.0))
    schedule = _report([p], 150, RateUnit.amps).wire_schedule()
    assert schedule == {"duration": 150, "chargingRateUnit": "A",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.0},
                                                   {"startPeriod": 100, "limit": 8.3}]}  # no startSchedule


def test_a_rise_less_than_a_second_away_starts_at_the_next_second_and_is_never_dropped() -> None:
    """Whole seconds on the wire: the lower limit holds for the second the change falls in, the
    higher one follows from the next second (found by the full suite: asked 0.4 s before a rise,
    the report once said the lower limit for the whole duration)."""
    rise = profile(1, Purpose.tx_default_profile, [(0, 10), (3, 20)])
    situation = Situation((rise,), {}, T0)
    start, end = T0 + timedelta(seconds=2.6), T0 + timedelta(seconds=62.6)
    found = segments(lambda t: connector_limit(situation, THREE_PHASE, t), start, end)
    assert build_report(found, start, 60, RateUnit.amps, THREE_PHASE).periods == ((0, 10.0), (1, 20.0))
    drop = profile(2, Purpose.tx_default_profile, [(0, 20), (3, 10)])
    situation = Situation((drop,), {}, T0)
    found = segments(lambda t: connector_limit(situation, THREE_PHASE, t), start, end)
    assert build_report(found, start, 60, RateUnit.amps, THREE_PHASE).periods == ((0, 10.0),)


def test_report_without_any_profile_is_the_hardware_ceiling_in_watts() -> None:
    report = _report([], 60, None, ONE_PHASE)
    assert (report.unit, report.periods) == (RateUnit.watts, ((0, 7_360.0),))


def test_station_total_is_the_cap_or_the_sum_of_connector_limits() -> None:
    connectors = (THREE_PHASE, ONE_PHASE)
    default = profile(1, Purpose.tx_default_profile, [(0, 10)], connector=0)
    cap = profile(2, Purpose.charge_point_max_profile, [(0, 5_000)], connector=0, unit=RateUnit.watts,
                  duration=60)
    situation = Situation((default, cap), {}, T0)
    limit, change = station_total(situation, STATION, connectors, T0)
    assert (limit.watts, change) == (5_000, at(60))
    later, _ = station_total(situation, STATION, connectors, at(60))
    assert later.watts == pytest.approx(10 * W_PER_A_3PH + 10 * 230.0)


def test_a_window_with_too_many_changes_is_refused() -> None:
    p = profile(1, Purpose.tx_default_profile, [(0, 6), (1, 7)], kind=Kind.recurring,
                recurrency=Recurrency.daily, duration=2)
    situation = Situation((p,), {}, T0)
    with pytest.raises(TooManyChanges):
        segments(lambda t: connector_limit(situation, THREE_PHASE, t), T0, at(86_400 * 20_000))


# ---- what the publisher writes --------------------------------------------------------------

def _limit(watts: float) -> Limit:
    return Limit(watts, Purpose.tx_default_profile, RateUnit.watts)


def test_publication_takes_a_coming_lower_limit_early_and_a_higher_one_on_time() -> None:
    lower_next = [Segment(T0, at(10), _limit(5_000)), Segment(at(10), None, _limit(3_000))]
    assert plan(lower_next, T0) == plan(lower_next, T0)  # pure
    now = plan(lower_next, T0)
    assert (now.limit.watts, now.expires_at, now.wake_at) == (5_000, at(10), at(9))
    early = plan([Segment(at(9), at(10), _limit(5_000)), lower_next[1]], at(9))
    assert (early.limit.watts, early.expires_at, early.wake_at) == (3_000, None, at(10))
    higher_next = plan([Segment(at(9.5), at(10), _limit(3_000)), Segment(at(10), at(20), _limit(5_000))],
                       at(9.5))
    assert (higher_next.limit.watts, higher_next.expires_at, higher_next.wake_at) == (3_000, at(20), at(10))


def test_publication_ends_where_the_limits_end() -> None:
    ending = plan([Segment(at(9.5), at(10), _limit(3_000)), Segment(at(10), None, None)], at(9.5))
    assert (ending.limit.watts, ending.expires_at, ending.wake_at) == (3_000, at(10), at(10))
    nothing = plan([Segment(T0, at(30), None), Segment(at(30), None, _limit(1))], T0)
    assert (nothing.limit, nothing.wake_at) == (None, at(30))


# ---- validation -----------------------------------------------------------------------------

CAPACITY = Capacity(max_stack_level=10, max_periods=4, max_installed=64,
                    allowed_units=frozenset({RateUnit.amps, RateUnit.watts}))


@pytest.mark.parametrize(("bad", "reason"), [
    (profile(1, Purpose.charge_point_max_profile, [(0, 6)], connector=1), "only for connectorId 0"),
    (profile(1, Purpose.charge_point_max_profile, [(0, 6)], connector=0, kind=Kind.relative),
     "cannot be Relative"),
    (profile(1, Purpose.tx_default_profile, [(0, 6)], recurrency=Recurrency.daily), "recurrencyKind"),
    (profile(1, Purpose.tx_default_profile, [(0, 6)], kind=Kind.recurring), "recurrencyKind"),
    (profile(1, Purpose.tx_default_profile, [(5, 6)]), "first period starts at 5"),
    (profile(1, Purpose.tx_default_profile, [(0, 6), (0, 7)]), "strictly increasing"),
    (profile(1, Purpose.tx_default_profile, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]), "ChargingScheduleMax"),
    (profile(1, Purpose.tx_default_profile, [(0, 6)], stack=11), "stackLevel 11"),
    (profile(1, Purpose.tx_default_profile, [(0, 6)], phases=4), "numberPhases"),
    (profile(1, Purpose.tx_default_profile, [(0, 6)], valid_from=at(5), valid_to=at(5)), "validTo"),
    (profile(1, Purpose.tx_default_profile, [(0, 6)], kind=Kind.recurring, recurrency=Recurrency.daily,
             start=None), "needs startSchedule"),
])
def test_profiles_against_the_rules_are_refused_with_a_reason(bad: ChargingProfile, reason: str) -> None:
    assert reason in (profile_problem(bad, CAPACITY) or "")


def test_a_unit_the_station_does_not_allow_is_refused() -> None:
    power_only = replace(CAPACITY, allowed_units=frozenset({RateUnit.watts}))
    assert "not allowed" in profile_problem(profile(1, Purpose.tx_default_profile, [(0, 6)]), power_only)


def test_tx_profile_needs_its_transaction_running_on_the_connector() -> None:
    """TC_058_1_CS (no transaction), TC_058_2_CS (another transactionId)."""
    tx = profile(1, Purpose.tx_profile, [(0, 6)])
    running = RunningTransaction(1, "s-1", T0, 77)
    assert tx_profile_problem(tx, None) == "no transaction runs on connector 1"
    assert tx_profile_problem(replace(tx, transaction_id=78), running).startswith("transactionId 78")
    assert tx_profile_problem(replace(tx, transaction_id=77), running) is None
    assert tx_profile_problem(replace(tx, connector_id=0), running) == "a TxProfile needs a connector, not 0"


def test_wire_profile_parses_and_rounds_limits_down_to_a_tenth() -> None:
    wire = {"chargingProfileId": 4, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute", "validTo": "2025-03-02T00:00:00Z",
            "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": "2025-03-01T12:00:00.000+01:00",
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.25}]}}
    parsed = parse_profile(wire, 2)
    assert parsed.schedule.periods == (SchedulePeriod(0, 6.2),)
    assert parsed.schedule.start == T0 - timedelta(hours=1)
    assert parsed.valid_to == datetime(2025, 3, 2, tzinfo=UTC)
    with pytest.raises(WireFormatError):
        parse_profile({**wire, "validTo": "tomorrow"}, 2)


def test_charge_point_max_without_start_schedule_starts_when_received() -> None:
    wire = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "ChargePointMaxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": "W", "duration": 60,
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 9000}]}}
    cap, stored = anchored_at_receipt(parse_profile(wire, 0), wire, T0)
    assert cap.schedule.start == T0 == parse_profile(stored, 0).schedule.start
    assert [amps_at([cap], s) for s in (59, 60)] == [pytest.approx(9000 / W_PER_A_3PH, abs=0.001), None]
    default = {**wire, "chargingProfilePurpose": "TxDefaultProfile"}
    assert anchored_at_receipt(parse_profile(default, 0), default, T0)[0].schedule.start is None


# ---- properties -----------------------------------------------------------------------------

LIMITS_A = st.integers(0, 800).map(lambda tenths: tenths / 10)
OFFSETS_S = st.integers(-3 * 86_400, 3 * 86_400)


@st.composite
def profiles(draw: st.DrawFn, profile_id: int) -> ChargingProfile:
    purpose = draw(st.sampled_from(list(Purpose)))
    connector = 0 if purpose is Purpose.charge_point_max_profile else draw(st.sampled_from([0, 1]))
    kind = draw(st.sampled_from([Kind.absolute, Kind.recurring] if connector == 0 else list(Kind)))
    starts = sorted(draw(st.sets(st.integers(1, 90_000), max_size=4)))
    unit = draw(st.sampled_from(list(RateUnit)))
    scale = 1.0 if unit is RateUnit.amps else 230.0
    periods = [(start_s, draw(LIMITS_A) * scale) for start_s in [0, *starts]]
    valid_from = draw(st.none() | OFFSETS_S.map(at))
    valid_to = draw(st.none() | st.integers(1, 86_400).map(
        lambda span: (valid_from or T0) + timedelta(seconds=span)))
    return profile(profile_id, purpose, periods, connector=connector, stack=draw(st.integers(0, 3)),
                   kind=kind, unit=unit, start=draw(OFFSETS_S.map(at)),
                   duration=draw(st.none() | st.integers(0, 200_000)),
                   recurrency=draw(st.sampled_from(list(Recurrency))) if kind is Kind.recurring else None,
                   valid_from=valid_from, valid_to=valid_to, phases=draw(st.sampled_from([None, 1, 3])))


@st.composite
def situations(draw: st.DrawFn) -> Situation:
    count = draw(st.integers(0, 6))
    installed = tuple(draw(profiles(profile_id)) for profile_id in range(count))
    tx_start = draw(st.none() | OFFSETS_S.map(at))
    return Situation(installed, {} if tx_start is None else {1: tx_start}, T0)


def winner_watts(situation: Situation, purposes: set[Purpose], connector: int, moment: datetime,
                 scope: Scope) -> float | None:
    """Independent check: the in-force profile of the highest stack level among `purposes` on
    `connector`, found by asking each profile on its own."""
    tx_start = situation.tx_starts.get(1, situation.idle_start)
    in_force = []
    for p in situation.profiles:
        if p.purpose in purposes and p.connector_id == connector:
            period, _ = period_at(p, moment, tx_start)
            if period is not None:
                watts = to_watts(period.limit, p.schedule.unit, period.number_phases, scope.phases)
                in_force.append((p.stack_level, -watts))
    return -max(in_force)[1] if in_force else None


@settings(max_examples=150, deadline=None)
@given(situations(), st.lists(OFFSETS_S, min_size=1, max_size=5), st.sampled_from([THREE_PHASE, ONE_PHASE]))
def test_composite_never_exceeds_the_charge_point_max_nor_the_transaction_limit_in_force(
        situation: Situation, offsets: list[int], scope: Scope) -> None:
    """Safety invariant 1: at any instant the connector's limit is <= the ChargePointMaxProfile
    in force and <= the TxProfile (else TxDefaultProfile) in force, and is one of them."""
    scope = replace(scope, connector_id=1)
    for offset in offsets:
        moment = at(offset)
        limit, _ = connector_limit(situation, scope, moment)
        cap = winner_watts(situation, {Purpose.charge_point_max_profile}, 0, moment, scope)
        tx = winner_watts(situation, {Purpose.tx_profile}, 1, moment, scope)
        default = winner_watts(situation, {Purpose.tx_default_profile}, 1, moment, scope)
        if default is None:
            default = winner_watts(situation, {Purpose.tx_default_profile}, 0, moment, scope)
        expected = [w for w in (cap, tx if tx is not None else default) if w is not None]
        assert (limit is None) == (not expected)
        if limit is not None:
            assert limit.watts <= min(expected) + 1e-9
            assert limit.watts == pytest.approx(min(expected))


def _segment_at(found: list[Segment], moment: datetime) -> Segment:
    return next(s for s in reversed(found) if s.start <= moment)


@settings(max_examples=100, deadline=None)
@given(situations(), st.integers(0, 2 * 86_400), st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_segments_and_publications_follow_the_schedule_at_every_instant(
        situation: Situation, span_s: int, fractions: list[float]) -> None:
    """Every instant of a window has the limit its segment says (no change missed), and what
    the publisher writes at T0 is never above the schedule until the key expires."""
    def evaluate(moment: datetime) -> Evaluation:
        return connector_limit(situation, THREE_PHASE, moment)
    until = at(span_s)
    found = segments(evaluate, T0, until)
    for fraction in fractions:
        moment = T0 + (until - T0) * fraction
        assert _segment_at(found, moment).limit == evaluate(moment)[0]
    publication = plan(segments(evaluate, T0, at(1)), T0)
    end = publication.expires_at or at(span_s)
    for fraction in fractions:
        moment = T0 + (end - T0) * fraction
        schedule, _ = evaluate(moment)
        if publication.limit is not None and schedule is not None and moment < end:
            assert publication.limit.watts <= schedule.watts + 1e-9
        if publication.limit is None:
            assert evaluate(T0)[0] is None
