"""The power allocation engine (workers/smartw/power_allocation.py): safety invariant 1 of
ARCHITECTURE.md and the sharing rules, checked at every step of random scenarios (random
stations, then plug, unplug, demand, OCPP/operator limits, module failures, measured power,
other loads and time passing), plus golden scenarios and station.toml's power model.

Profiles: the CI run checks 10,000 scenarios (about 10 s); `HYPOTHESIS_PROFILE=long` checks
200,000 (a few minutes, no pytest timeout).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from itertools import combinations
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bus.enums import Standard
from workers.common.station_config import ConfigError, StationConfig, load_station_config
from workers.smartw.power_allocation import (
    AllocationInput,
    AllocationResult,
    AllocationSettings,
    ConnectorInput,
    ExternalLimit,
    ModuleInput,
    Policy,
    StationInput,
    WaitReason,
    allocate_power,
    matrix_from_config,
    settings_from_config,
)

REPO = Path(__file__).resolve().parents[2]
TOLERANCE_W = 1e-3
SCENARIOS = {"ci": 10_000, "long": 200_000}
settings.register_profile("power-allocation-ci", max_examples=SCENARIOS["ci"], deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], database=None)
settings.register_profile("power-allocation-long", max_examples=SCENARIOS["long"], deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
PROFILE = settings.get_profile("power-allocation-long" if LONG else "power-allocation-ci")
DC_STANDARDS = (Standard.CCS, Standard.CHADEMO, Standard.GBT)


# --- the world a scenario drives ------------------------------------------------------------

@dataclass
class World:
    """What the rest of smartw would feed the engine each cycle, and what the EVs draw."""

    station: StationInput
    connectors: dict[int, ConnectorInput]
    modules: dict[str, ModuleInput]
    settings: AllocationSettings
    now: float = 100.0
    draw: dict[int, float] = field(default_factory=dict)  # fraction of its allocation an EV draws
    other_load_w: float = 0.0

    def request(self) -> AllocationInput:
        connectors = tuple(self.connectors.values())
        station = self.station
        if station.meter_w is not None:
            ours = sum(c.measured_w or 0.0 for c in connectors)
            station = replace(station, meter_w=ours + self.other_load_w)
        return AllocationInput(station, connectors, tuple(self.modules.values()), self.settings, self.now)

    def step(self) -> tuple[AllocationInput, AllocationResult]:
        request = self.request()
        result = allocate_power(request)
        for module in result.modules:
            self.modules[module.name] = replace(self.modules[module.name], connector_id=module.connector_id,
                                                since=module.since)
        for given_power in result.connectors:
            c = self.connectors[given_power.connector_id]
            drawn = min(given_power.power_w, c.demand_w) * self.draw.get(c.connector_id, 1.0)
            self.connectors[c.connector_id] = replace(c, previous_w=given_power.power_w, measured_w=drawn)
        return request, result


def minimum_w(c: ConnectorInput, config: AllocationSettings) -> float:
    if c.is_dc:
        return c.ev_min_w if c.ev_min_w is not None else config.dc_min_w.get(c.standard, 0.0)
    return max(c.ev_min_w or 0.0, config.ac_min_current_a * c.phases * c.phase_voltage_v)


def amps_per_w(c: ConnectorInput, station: StationInput) -> float:
    return 1 / (3 * station.phase_voltage_v) if c.is_dc else 1 / (c.phases * c.phase_voltage_v)


def connector_limit_w(c: ConnectorInput, now: float) -> float:
    limits = [c.limit_w]
    if c.operator_limit_w is not None:
        limits.append(c.operator_limit_w)
    if c.ocpp_limit is not None and (c.ocpp_limit.expires_at is None or now < c.ocpp_limit.expires_at):
        limits.append(c.ocpp_limit.limit_w)
    if not c.is_dc and c.limit_a is not None:
        limits.append(c.limit_a * c.phases * c.phase_voltage_v)
    return min(limits)


def budgets(request: AllocationInput) -> tuple[float, float]:
    s, now = request.station, request.now
    limit = min(x for x in (s.limit_w, s.operator_limit_w,
                            s.ocpp_limit.limit_w if s.ocpp_limit and s.ocpp_limit.active(now) else None)
                if x is not None)
    other = max(s.meter_w - sum(c.measured_w or 0.0 for c in request.connectors), 0.0) \
        if s.meter_w is not None else 0.0
    current = math.inf if s.limit_a is None else s.limit_a - other / (3 * s.phase_voltage_v)
    return limit - other, current


# --- the invariants, checked after every step -----------------------------------------------

def check_invariants(request: AllocationInput, result: AllocationResult) -> None:
    check_limits(request, result)
    check_modules(request, result)
    check_nobody_starved(request, result)
    check_dwell(request, result)


def check_limits(request: AllocationInput, result: AllocationResult) -> None:
    """Safety invariant 1: station (W, A per phase, meter headroom), connector and OCPP limits."""
    budget_w, budget_a = budgets(request)
    given = {c.connector_id: c for c in result.connectors}
    assert sum(c.power_w for c in result.connectors) <= max(budget_w, 0.0) + TOLERANCE_W
    assert sum(given[c.connector_id].power_w * amps_per_w(c, request.station)
               for c in request.connectors) <= max(budget_a, 0.0) + 1e-6
    for c in request.connectors:
        power = given[c.connector_id].power_w
        assert 0 <= power <= connector_limit_w(c, request.now) + TOLERANCE_W
        if c.session_started_at is None or c.demand_w <= 0:
            assert power == 0 and given[c.connector_id].waiting is None
        if power > 0:
            assert power >= minimum_w(c, request.settings) - TOLERANCE_W  # throttled, never below minimum
        if not c.is_dc:
            amps = power / (c.phases * c.phase_voltage_v)
            assert given[c.connector_id].current_limit_a == pytest.approx(amps)


def check_modules(request: AllocationInput, result: AllocationResult) -> None:
    """One connector per module, only where the matrix allows, only when available; DC power
    within what its modules give; setpoints carry exactly the allocated power."""
    assert sorted(m.name for m in result.modules) == sorted(m.name for m in request.modules)
    inputs = {m.name: m for m in request.modules}
    sessions = {c.connector_id for c in request.connectors if c.session_started_at is not None}
    for module in result.modules:
        if module.connector_id is not None:
            assert inputs[module.name].available
            assert module.name in request.station.matrix.get(module.connector_id, ())
            assert module.connector_id in sessions
    for c in request.connectors:
        if c.is_dc:
            rated = sum(inputs[name].rated_w for name in result.modules_of(c.connector_id))
            assert result.connector(c.connector_id).power_w <= rated + TOLERANCE_W
    for group in result.groups:
        power = result.connector(group.connector_id).power_w
        if group.voltage_v:
            assert group.current_a * group.voltage_v == pytest.approx(power, abs=TOLERANCE_W)
            assert sum(group.module_current_a) == pytest.approx(group.current_a)


def check_nobody_starved(request: AllocationInput, result: AllocationResult) -> None:
    """An EV that wants power and gets none waits for a reason that holds: its limit is under
    its minimum, the minimums of the sessions served use the budget, or no arrangement of the
    modules it can reach covers its minimum next to theirs (Hall's condition)."""
    budget_w, budget_a = budgets(request)
    served = [c for c in request.connectors if result.connector(c.connector_id).power_w > 0]
    used_w = sum(minimum_w(c, request.settings) for c in served)
    used_a = sum(minimum_w(c, request.settings) * amps_per_w(c, request.station) for c in served)
    for c in request.connectors:
        given = result.connector(c.connector_id)
        if c.session_started_at is None or c.demand_w <= 0 or given.power_w > 0:
            continue
        need = minimum_w(c, request.settings)
        assert given.waiting is not None, f"connector {c.connector_id} gets nothing and does not wait"
        if given.waiting is WaitReason.LIMIT_BELOW_MINIMUM:
            assert connector_limit_w(c, request.now) < need
        elif given.waiting is WaitReason.STATION_FULL:
            assert used_w + need > budget_w - TOLERANCE_W or \
                used_a + need * amps_per_w(c, request.station) > budget_a - 1e-6
        else:
            assert c.is_dc and not modules_can_cover(request, [d for d in served if d.is_dc], c)


def modules_can_cover(request: AllocationInput, served: list[ConnectorInput],
                      waiting: ConnectorInput) -> bool:
    """Hall's condition for modules of one rating: every set of connectors reaches at least as
    many available modules as their minimums need together (a DC connector needs one at least)."""
    available = {m.name for m in request.modules if m.available}
    rated = {m.rated_w for m in request.modules}.pop() if request.modules else 1.0
    for size in range(1, len(served) + 2):
        for group in combinations([*served, waiting], size):
            if waiting not in group:
                continue
            reach = set().union(*(request.station.matrix.get(c.connector_id, set()) for c in group))
            needed = sum(max(math.ceil(minimum_w(c, request.settings) / rated - 1e-9), 1) for c in group)
            if len(reach & available) < needed:
                return False
    return True


def check_dwell(request: AllocationInput, result: AllocationResult) -> None:
    """A module leaves a charging connector inside its dwell time only when it failed or a
    waiting EV needs it for its minimum (then it is flagged and that EV is served)."""
    inputs = {m.name: m for m in request.modules}
    sessions = {c.connector_id for c in request.connectors if c.session_started_at is not None}
    for module in result.modules:
        before = inputs[module.name]
        moved = module.connector_id != before.connector_id
        unsettled = request.now - before.since < request.settings.module_dwell_s
        if moved and unsettled and before.available and before.connector_id in sessions:
            assert module.for_minimum and module.connector_id is not None
            assert result.connector(module.connector_id).power_w > 0
        assert module.since == (request.now if moved else before.since)


# --- random stations and steps -----------------------------------------------------------------
# A scenario is two byte strings (the station, then 3 bytes per event) decoded below: two draws
# per scenario keep 10,000 of them inside the CI budget, and hypothesis still shrinks them
# (fewer events, smaller bytes: smaller stations, earlier event kinds, lower values).

class Decoder:
    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def pick(self, choices: list | tuple):
        value = self.data[self.position] if self.position < len(self.data) else 0
        self.position += 1
        return choices[value % len(choices)]

    def number(self, top: int) -> int:
        return self.pick(range(top + 1))


def decode_world(data: bytes) -> World:
    d = Decoder(data)
    dc_count, ac_count = d.number(3), d.number(2)
    dc_count = dc_count or (0 if ac_count else 1)
    rated_w = d.pick([15_000.0, 30_000.0, 40_000.0])
    names = [f"pm{i}" for i in range(1, d.number(8) + 1)]
    connectors: dict[int, ConnectorInput] = {}
    matrix = {}
    for cid in range(1, dc_count + 1):
        connectors[cid] = ConnectorInput(cid, d.pick(DC_STANDARDS), d.pick([50e3, 60e3, 150e3, 350e3]),
                                         target_voltage_v=d.pick([None, 400.0, 800.0]))
        mask = d.number(255)
        matrix[cid] = frozenset(n for i, n in enumerate(names) if mask >> i & 1)
    for cid in range(dc_count + 1, dc_count + ac_count + 1):
        connectors[cid] = ConnectorInput(cid, Standard.TYPE2, d.pick([7_400.0, 11_000.0, 22_000.0]),
                                         phases=d.pick([1, 3]), limit_a=d.pick([None, 16.0, 32.0]))
    station = StationInput(min(d.number(255) * 2000.0, 400_000.0), matrix,
                           limit_a=d.pick([None, 16.0, 63.0, 250.0]), meter_w=d.pick([None, 0.0]))
    config = AllocationSettings(policy=d.pick(list(Policy)), module_dwell_s=d.pick([0.0, 5.0, 30.0]),
                                dc_min_w=dict.fromkeys(DC_STANDARDS, d.pick([1_000.0, 5_000.0, 20_000.0])),
                                unused_margin_w=d.pick([0.0, 3_000.0]))
    return World(station, connectors, {n: ModuleInput(n, rated_w) for n in names}, config)


KINDS = ("plug", "unplug", "demand", "ocpp", "operator", "station_ocpp", "station_operator",
         "module", "draw", "other_load", "wait")
WAITS_S = (0.0, 0.25, 1.0, 10.0, 40.0)
EVENT_BYTES = 3


def decode_events(data: bytes) -> list[tuple[str, int, int, float]]:
    """(kind, index, value 0..1020, seconds passing) per 3 bytes."""
    events = []
    for offset in range(0, len(data) - EVENT_BYTES + 1, EVENT_BYTES):
        kind, index, value = data[offset:offset + EVENT_BYTES]
        wait_s = WAITS_S[kind // len(KINDS) % len(WAITS_S)]
        events.append((KINDS[kind % len(KINDS)], index, value * 4, wait_s))
    return events


stations = st.binary(min_size=26, max_size=26).map(decode_world)
scenarios = st.binary(min_size=EVENT_BYTES, max_size=10 * EVENT_BYTES).map(decode_events)


def apply(world: World, kind: str, index: int, value: int) -> None:
    """One event: `index` picks a connector or module, `value` (0..1020) sizes it."""
    cid = list(world.connectors)[index % len(world.connectors)]
    c = world.connectors[cid]
    limit = ExternalLimit(value * 300.0, "TxProfile", world.now + value % 50 if value % 3 else None)
    if kind == "plug" and c.session_started_at is None:
        world.connectors[cid] = replace(c, session_started_at=world.now, demand_w=value * 400.0,
                                        ev_min_w=None if value % 2 else value * 10.0)
    elif kind == "unplug":
        world.connectors[cid] = replace(c, session_started_at=None, demand_w=0.0, measured_w=0.0)
    elif kind == "demand" and c.session_started_at is not None:
        world.connectors[cid] = replace(c, demand_w=value * 400.0)
    elif kind == "ocpp":
        world.connectors[cid] = replace(c, ocpp_limit=limit if value % 5 else None)
    elif kind == "operator":
        world.connectors[cid] = replace(c, operator_limit_w=value * 300.0 if value % 4 else None)
    elif kind == "station_ocpp":
        station_limit = replace(limit, limit_w=value * 500.0, source="ChargePointMaxProfile")
        world.station = replace(world.station, ocpp_limit=station_limit if value % 5 else None)
    elif kind == "station_operator":
        world.station = replace(world.station, operator_limit_w=value * 500.0 if value % 4 else None)
    elif kind == "module" and world.modules:
        name = list(world.modules)[index % len(world.modules)]
        world.modules[name] = replace(world.modules[name], available=not world.modules[name].available)
    elif kind == "draw":
        world.draw[cid] = value / 1020
    elif kind == "other_load":
        world.other_load_w = value * 200.0


@pytest.mark.timeout(0 if LONG else 120)
@PROFILE
@given(world=stations, events=scenarios)
def test_every_step_of_a_random_scenario_keeps_the_invariants(world: World, events) -> None:
    for kind, index, value, dt in events:
        apply(world, kind, index, value)
        world.now += 0.25 + dt
        check_invariants(*world.step())


# --- golden scenarios ---------------------------------------------------------------------------

def dc_world(modules: int = 6, station_w: float = 400_000.0, dwell_s: float = 30.0,
             matrix: dict[int, list[str]] | None = None, policy: Policy = Policy.EQUAL_SHARE) -> World:
    names = [f"pm{i}" for i in range(1, modules + 1)]
    matrix = matrix or {1: names, 2: names}
    connectors = {cid: ConnectorInput(cid, Standard.CCS, 150_000.0, target_voltage_v=400.0) for cid in matrix}
    return World(StationInput(station_w, {cid: frozenset(n) for cid, n in matrix.items()}),
                 connectors, {n: ModuleInput(n, 30_000.0) for n in names},
                 AllocationSettings(policy=policy, module_dwell_s=dwell_s, dc_min_w={Standard.CCS: 10_000.0}),
                 now=0.0)


def plug(world: World, cid: int, demand_w: float, **fields: object) -> None:
    world.connectors[cid] = replace(world.connectors[cid], session_started_at=world.now, demand_w=demand_w,
                                    **fields)


def powers(result: AllocationResult) -> dict[int, float]:
    return {c.connector_id: c.power_w for c in result.connectors}


def run_at(world: World, now: float) -> AllocationResult:
    world.now = now
    request, result = world.step()
    check_invariants(request, result)
    return result


def test_two_dc_evs_share_six_modules_and_rebalance_after_the_dwell_time() -> None:
    world = dc_world(station_w=180_000.0)
    plug(world, 1, 150_000.0)
    result = run_at(world, 0.0)
    assert powers(result) == {1: 150_000.0, 2: 0.0} and len(result.modules_of(1)) == 5
    plug(world, 2, 150_000.0)
    result = run_at(world, 10.0)  # the idle module at once; pm1..5 stay (dwell)
    assert powers(result) == {1: 150_000.0, 2: 30_000.0} and len(result.modules_of(1)) == 5
    result = run_at(world, 30.0)
    assert powers(result) == {1: 90_000.0, 2: 90_000.0}
    assert len(result.modules_of(1)) == len(result.modules_of(2)) == 3
    group = next(g for g in result.groups if g.connector_id == 2)
    assert (group.voltage_v, group.current_a, group.module_current_a) == (400.0, 225.0, (75.0, 75.0, 75.0))


def test_a_waiting_ev_takes_an_unsettled_module_only_for_its_minimum() -> None:
    world = dc_world(station_w=400_000.0)
    world.connectors[1] = replace(world.connectors[1], limit_w=180_000.0)
    plug(world, 1, 180_000.0)
    assert len(run_at(world, 0.0).modules_of(1)) == 6
    plug(world, 2, 150_000.0)
    result = run_at(world, 1.0)
    assert powers(result) == {1: 150_000.0, 2: 30_000.0}
    assert [m.for_minimum for m in result.modules if m.connector_id == 2] == [True]


def test_an_earlier_ev_switches_module_so_a_new_one_gets_the_only_module_it_reaches() -> None:
    world = dc_world(modules=2, station_w=400_000.0, matrix={1: ["pm1", "pm2"], 2: ["pm2"]})
    world.modules["pm1"] = replace(world.modules["pm1"], available=False)
    plug(world, 1, 30_000.0)
    assert run_at(world, 0.0).modules_of(1) == ("pm2",)
    world.modules["pm1"] = replace(world.modules["pm1"], available=True)
    plug(world, 2, 30_000.0)
    result = run_at(world, 1.0)
    assert (result.modules_of(1), result.modules_of(2)) == (("pm1",), ("pm2",))
    assert powers(result) == {1: 30_000.0, 2: 30_000.0}


def test_ac_and_dc_at_once_within_power_and_current_per_phase() -> None:
    world = dc_world(station_w=100_000.0, matrix={1: ["pm1", "pm2", "pm3", "pm4", "pm5", "pm6"]})
    world.connectors[2] = ConnectorInput(2, Standard.TYPE2, 22_000.0, limit_a=32.0)
    world.station = replace(world.station, limit_a=160.0)  # 110.4 kW over three phases
    plug(world, 1, 150_000.0)
    plug(world, 2, 22_000.0)
    result = run_at(world, 0.0)
    assert powers(result) == pytest.approx({1: 78_000.0, 2: 22_000.0})
    assert result.connector(2).current_limit_a == pytest.approx(22_000 / 690)
    world.station = replace(world.station, limit_a=80.0)  # 80 A x 690 V = 55.2 kW over both
    result = run_at(world, 1.0)
    assert sum(powers(result).values()) == pytest.approx(55_200.0)
    assert powers(result)[2] == pytest.approx(22_000.0)


def test_an_ocpp_limit_drops_mid_session_then_expires_and_below_the_minimum_the_ev_waits() -> None:
    world = dc_world(matrix={1: ["pm1", "pm2", "pm3", "pm4", "pm5", "pm6"]})
    plug(world, 1, 120_000.0)
    assert powers(run_at(world, 0.0))[1] == 120_000.0
    world.connectors[1] = replace(world.connectors[1], ocpp_limit=ExternalLimit(40_000.0, "TxProfile", 60.0))
    assert powers(run_at(world, 1.0))[1] == 40_000.0
    assert powers(run_at(world, 60.0))[1] == 120_000.0  # expired
    world.connectors[1] = replace(world.connectors[1], ocpp_limit=ExternalLimit(5_000.0, "TxDefaultProfile"))
    result = run_at(world, 61.0)
    assert result.connector(1).waiting is WaitReason.LIMIT_BELOW_MINIMUM
    assert result.connector(1).suspended_evse
    assert world.connectors[1].session_started_at == 0.0  # the session goes on
    world.connectors[1] = replace(world.connectors[1], ocpp_limit=None)
    assert powers(run_at(world, 62.0))[1] == 120_000.0


def test_a_third_ev_arriving_at_a_full_station_gets_its_minimum_or_waits_until_power_frees() -> None:
    ac = {cid: ConnectorInput(cid, Standard.TYPE2, 22_000.0) for cid in (1, 2, 3)}
    world = World(StationInput(30_000.0), ac, {}, AllocationSettings(), now=0.0)
    plug(world, 1, 22_000.0)
    plug(world, 2, 22_000.0)
    assert powers(run_at(world, 0.0)) == {1: 15_000.0, 2: 15_000.0, 3: 0.0}
    plug(world, 3, 22_000.0)
    assert powers(run_at(world, 1.0)) == pytest.approx({1: 10_000.0, 2: 10_000.0, 3: 10_000.0})
    world.station = replace(world.station, operator_limit_w=10_000.0)  # three minimums need 12.42 kW
    result = run_at(world, 2.0)
    assert result.connector(3).waiting is WaitReason.STATION_FULL
    assert powers(result) == pytest.approx({1: 5_000.0, 2: 5_000.0, 3: 0.0})
    world.connectors[1] = replace(world.connectors[1], session_started_at=None, demand_w=0.0)
    assert powers(run_at(world, 3.0)) == pytest.approx({1: 0.0, 2: 5_000.0, 3: 5_000.0})


def test_first_come_serves_the_earlier_session_first_above_the_minimums() -> None:
    world = dc_world(station_w=100_000.0, dwell_s=0.0, policy=Policy.FIRST_COME)
    plug(world, 1, 150_000.0)
    run_at(world, 0.0)
    plug(world, 2, 150_000.0)
    assert powers(run_at(world, 1.0)) == {1: 90_000.0, 2: 10_000.0}


def test_a_module_failing_mid_session_is_replaced_by_an_idle_one_or_the_power_drops() -> None:
    world = dc_world(modules=4, matrix={1: ["pm1", "pm2", "pm3", "pm4"]})
    world.connectors[1] = replace(world.connectors[1], limit_w=90_000.0)
    plug(world, 1, 90_000.0)
    assert run_at(world, 0.0).modules_of(1) == ("pm1", "pm2", "pm3")
    world.modules["pm2"] = replace(world.modules["pm2"], available=False)
    result = run_at(world, 1.0)
    assert result.modules_of(1) == ("pm1", "pm3", "pm4") and powers(result)[1] == 90_000.0
    world.modules["pm3"] = replace(world.modules["pm3"], available=False)
    result = run_at(world, 2.0)
    assert result.modules_of(1) == ("pm1", "pm4") and powers(result)[1] == 60_000.0


def test_power_an_ev_leaves_unused_goes_to_the_others_from_measured_consumption() -> None:
    world = dc_world(station_w=120_000.0, dwell_s=0.0)
    plug(world, 1, 150_000.0)
    plug(world, 2, 150_000.0)
    assert powers(run_at(world, 0.0)) == {1: 60_000.0, 2: 60_000.0}
    world.draw[1] = 0.25  # the EV asks for 150 kW but takes 15 kW
    run_at(world, 1.0)
    assert powers(run_at(world, 2.0)) == {1: 18_000.0, 2: 102_000.0}  # measured + 3 kW margin


def test_other_loads_on_the_station_meter_shrink_the_budget() -> None:
    world = dc_world(station_w=100_000.0, matrix={1: ["pm1", "pm2", "pm3", "pm4", "pm5", "pm6"]})
    world.station = replace(world.station, meter_w=0.0)
    world.other_load_w = 30_000.0
    plug(world, 1, 150_000.0)
    assert powers(run_at(world, 0.0))[1] == 70_000.0


# --- station.toml: the power model ----------------------------------------------------------------

METER = {"bus": "b", "device_id": 1, "model": "sdm630"}


def station_config(**extra: object) -> StationConfig:
    connectors = extra.pop("connectors", [
        {"id": 1, "standard": "CCS", "max_power_kw": 150, "contactor_coil": 0, "meter": METER,
         "controller": {"bus": "b", "device_id": 21}},
        {"id": 2, "standard": "Type2", "max_power_kw": 22, "contactor_coil": 1, "meter": METER,
         "controller": {"bus": "b", "device_id": 22}},
        {"id": 3, "standard": "CHAdeMO", "max_power_kw": 60, "contactor_coil": 2, "meter": METER,
         "controller": {"bus": "b", "device_id": 23}}])
    modules = extra.pop("power_modules", {"count": 4})
    return StationConfig.model_validate({
        "station": extra.pop("station", {"max_power_kw": 100}),
        "buses": {"b": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": 502}},
        "io_module": {"bus": "b", "device_id": 10, "inputs": {"estop": 0}},
        "rfid": {"port": "/dev/null"}, "connectors": connectors,
        "power_modules": {"channel": "/dev/null", **modules}, **extra})


def links(matrix: dict[str, list[str]], first_coil: int = 10) -> list[dict[str, object]]:
    """[[power_modules.links]] for `matrix`: coils from `first_coil`, feedback inputs 10 above."""
    pairs = [(int(connector), module) for connector, modules in matrix.items() for module in modules]
    return [{"connector": connector, "module": module, "coil": first_coil + index,
             "feedback": first_coil + 10 + index} for index, (connector, module) in enumerate(pairs)]


AC_AND_ONE_DC = [
    {"id": 1, "standard": "CCS", "max_power_kw": 150, "contactor_coil": 0, "meter": METER,
     "controller": {"bus": "b", "device_id": 21}},
    {"id": 2, "standard": "Type2", "max_power_kw": 22, "contactor_coil": 1, "meter": METER,
     "controller": {"bus": "b", "device_id": 22}}]


def test_without_links_one_dc_connector_has_every_module_hard_wired() -> None:
    config = station_config(connectors=AC_AND_ONE_DC)
    assert matrix_from_config(config) == {1: frozenset({"pm1", "pm2", "pm3", "pm4"})}
    engine = settings_from_config(config)
    assert (engine.policy, engine.module_dwell_s, engine.dc_min_w[Standard.GBT]) == (
        Policy.EQUAL_SHARE, 30.0, 5000)


def test_without_links_modules_wired_to_two_dc_connectors_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"modules \['pm1', 'pm2', 'pm3', 'pm4'\] reach DC connectors "
                       r"\[1, 3\] .* add their link contactors as \[\[power_modules.links\]\]"):
        station_config()
    with pytest.raises(ValidationError, match=r"modules \['pm2'\] reach DC connectors \[1, 3\]"):
        station_config(power_modules={"count": 4, "matrix": {"1": ["pm1", "pm2"],
                                                             "3": ["pm2", "pm3", "pm4"]}})


def test_hard_wired_modules_on_separate_dc_connectors_are_a_matrix() -> None:
    config = station_config(power_modules={"count": 4, "matrix": {"1": ["pm1", "pm2"], "3": ["pm3", "pm4"]}})
    assert matrix_from_config(config) == {1: frozenset({"pm1", "pm2"}), 3: frozenset({"pm3", "pm4"})}


def test_links_make_the_matrix_and_the_allocation_section_is_read() -> None:
    matrix = {"1": ["pm1", "pm2", "pm3"], "3": ["pm3", "pm4"]}
    config = station_config(power_modules={"count": 4, "links": links(matrix)},
                            allocation={"policy": "first_come", "module_dwell_s": 10,
                                        "min_power_kw": {"CCS": 2}},
                            station={"max_power_kw": 100, "max_current_a": 160})
    assert matrix_from_config(config) == {1: frozenset({"pm1", "pm2", "pm3"}), 3: frozenset({"pm3", "pm4"})}
    assert config.power_modules is not None
    assert [link.key for link in config.power_modules.links] == ["pm1>1", "pm2>1", "pm3>1", "pm3>3", "pm4>3"]
    same = station_config(power_modules={"count": 4, "links": links(matrix), "matrix": matrix})
    assert matrix_from_config(same) == matrix_from_config(config), "a matrix equal to the links is fine"
    engine = settings_from_config(config)
    assert (engine.policy, engine.dc_min_w[Standard.CCS], engine.dc_min_w[Standard.CHADEMO]) == (
        Policy.FIRST_COME, 2000, 5000)
    assert config.station.max_current_a == 160


@pytest.mark.parametrize(("extra", "message"), [
    ({"power_modules": {"count": 2, "matrix": {"1": ["pm1", "pm7"]}}}, "unknown modules \\['pm7'\\]"),
    ({"power_modules": {"count": 3, "matrix": {"1": ["pm1", "pm2"]}}},
     "leaves modules \\['pm3'\\] unreachable"),
    ({"power_modules": {"count": 2, "matrix": {"2": ["pm1", "pm2"]}}}, "connector 2, which is not a DC"),
    ({"power_modules": {"count": 2, "matrix": {"9": ["pm1", "pm2"]}}}, "connector 9, which is not a DC"),
    ({"power_modules": {"count": 2, "links": links({"1": ["pm1", "pm3"]})}}, "links names unknown modules"),
    ({"power_modules": {"count": 2, "links": links({"1": ["pm1"], "3": ["pm1"]})}},
     "links leaves modules \\['pm2'\\] unreachable"),
    ({"power_modules": {"count": 1, "links": links({"1": ["pm1", "pm1"]})}},
     "links \\['pm1>1'\\] are given more than once"),
    ({"power_modules": {"count": 2, "links": links({"1": ["pm1", "pm2"]}),
                        "matrix": {"1": ["pm1"], "3": ["pm2"]}}}, "differs from what the links connect"),
    ({"power_modules": {"count": 1, "links": links({"2": ["pm1"]})}},
     "links names connector 2, which is not a DC"),
    ({"power_modules": {"count": 1, "links": links({"9": ["pm1"]})}},
     "links names connector 9, which is not a DC"),
    ({"power_modules": {"count": 2, "links": links({"1": ["pm1", "pm2"]}, first_coil=1)}},
     "link pm1>1 coil and connector 2 coil are both on output 1"),
    ({"power_modules": {"count": 2, "links": [{"connector": 1, "module": "pm1", "coil": 10},
                                              {"connector": 3, "module": "pm2", "coil": 10}]}},
     "link pm2>3 coil and link pm1>1 coil are both on output 10"),
    ({"power_modules": {"count": 1, "links": [{"connector": 1, "module": "pm1", "coil": 10, "feedback": 0}]}},
     "link pm1>1 feedback and estop are both on input 0"),
    ({"allocation": {"policy": "round_robin"}}, "policy"),
    ({"allocation": {"min_power_kw": {"Type2": 4}}}, "AC's minimum is ac_min_current_a"),
    ({"connectors": [{"id": 1, "standard": "CCS", "max_power_kw": 50, "contactor_coil": 0, "meter": METER,
                      "controller": {"bus": "b", "device_id": 21}, "max_current_a": 100}]},
     "for AC connectors"),
])
def test_a_bad_power_model_names_what_is_wrong(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        station_config(**extra)


def test_the_shipped_station_files_load_with_the_power_model_defaults(tmp_path: Path) -> None:
    for path in [REPO / "ops/station.sim.toml", *sorted((REPO / "docs/examples").glob("*.toml"))]:
        config = load_station_config(path, data_dir=tmp_path)
        assert config.allocation.policy == "equal_share"


def test_an_unusable_matrix_in_a_file_stops_start_up_naming_the_field(tmp_path: Path) -> None:
    text = (REPO / "ops/station.sim.toml").read_text()
    link = '{ connector = 1, module = "pm1", coil = 10'
    assert link in text
    (tmp_path / "station.toml").write_text(text.replace(link, link.replace("connector = 1", "connector = 2")))
    with pytest.raises(ConfigError, match=r"power_modules\.links names connector 2, which is not a DC"):
        load_station_config(tmp_path / "station.toml", data_dir=tmp_path)
