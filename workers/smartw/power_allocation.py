"""The station's power allocation: which connector may draw how much, and which DC power
modules serve which connector. Pure (frozen inputs in, frozen result out, no I/O, no clock),
so safety invariant 1 and the sharing rules are property-tested over random stations
(tests/smartw/test_power_allocation.py) and the cost per cycle is benchmarked.

The rules, in the order they are applied every cycle:
1. Budget: the station limit (the lowest of its kW rating, an active station-wide OCPP limit
   and the operator's limit) minus the other loads the station meter sees (meter minus our
   connectors' measured power); also a per-phase current budget when the station has one
   (DC draws its power evenly from three phases; AC connectors are counted as if every
   single-phase one sat on the same phase, the worst case).
2. A connector's cap: the lowest of its rating (W, and A per phase for AC), an unexpired OCPP
   limit, the operator's limit and the EV's demand, and for DC what its reachable modules give.
3. Minimums first, in session-start order: a connector is admitted when its minimum (the EV's,
   else the standard's default; AC never below `ac_min_current_a`) fits the budget and, for DC,
   modules covering it can be reserved. Otherwise it waits (SuspendedEVSE) with a reason; its
   session is never stopped here, it resumes when power frees up. An admitted connector never
   gets less than its minimum (the limit is a ceiling: the EV may take less).
4. Above the minimums: equal share (water-filling, one common level) or first come first served.
5. Measured consumption: a connector that drew less than it was given (by more than the
   margin) is first capped at its measured power plus the margin; what it leaves goes to the
   others; whatever still remains then goes back to it, up to its real cap.
6. Modules (a module is on at most one connector, only one the matrix allows, only when
   available): a connector keeps its own modules first, then takes idle ones, then settled
   ones the others do not need. Dwell (hysteresis): a module stays on a connector at least
   `module_dwell_s` after it was connected, except when it fails, when its connector's session
   ends, or when a waiting EV needs it for its minimum and nobody is taken below their own
   minimum by the move (then it is flagged `for_minimum`). Connecting an idle module is
   immediate. DC power never exceeds what the connector's modules can give.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bus.enums import Standard
from workers.common.station_config import StationConfig
from workers.smartw.module_plan import ModulePlan
from workers.smartw.power_sharing import Share, share

DC_PHASES = 3
EPSILON_W = 1e-6


class Policy(StrEnum):
    EQUAL_SHARE = "equal_share"
    FIRST_COME = "first_come"


class WaitReason(StrEnum):
    """Why a connector whose EV wants power gets none (its status is SuspendedEVSE)."""

    STATION_FULL = "station_full"  # the minimums of earlier sessions use the budget
    NO_MODULE = "no_module"  # no free modules reachable through the matrix cover its minimum
    LIMIT_BELOW_MINIMUM = "limit_below_minimum"  # its own, OCPP or operator limit is under its minimum


@dataclass(frozen=True)
class ExternalLimit:
    """A limit from outside: an OCPP composite schedule (source: the profile purpose)."""

    limit_w: float
    source: str
    expires_at: float | None = None  # same clock as `now`; None: until replaced

    def active(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class ConnectorInput:
    connector_id: int
    standard: Standard
    limit_w: float  # the connector's own rating, W
    demand_w: float = 0.0  # what the EV asks for now, W (0: it takes nothing)
    session_started_at: float | None = None  # None: no session, nothing is allocated
    ev_min_w: float | None = None  # the EV's minimum, W; None: the standard's default
    measured_w: float | None = None  # the connector's meter now, W
    previous_w: float = 0.0  # what the last allocation gave it, W
    ocpp_limit: ExternalLimit | None = None
    operator_limit_w: float | None = None
    limit_a: float | None = None  # AC: per phase, A
    phases: int = 3  # AC
    phase_voltage_v: float = 230.0  # AC: phase to neutral
    target_voltage_v: float | None = None  # DC: the EV's target voltage, V
    module_fed: bool = True  # DC: fed by the station's power modules (False: the controller has its own)

    @property
    def is_dc(self) -> bool:
        return self.standard is not Standard.TYPE2

    @property
    def uses_modules(self) -> bool:
        return self.is_dc and self.module_fed


@dataclass(frozen=True)
class ModuleInput:
    name: str
    rated_w: float
    available: bool = True
    connector_id: int | None = None  # where its contactors connect it now
    since: float = -math.inf  # when that connection last changed (same clock as `now`)
    max_current_a: float | None = None  # caps its power at low voltage when given


@dataclass(frozen=True)
class StationInput:
    limit_w: float
    matrix: Mapping[int, frozenset[str]] = field(default_factory=dict)  # DC connector -> modules
    limit_a: float | None = None  # per phase, A
    phase_voltage_v: float = 230.0
    meter_w: float | None = None  # the station meter (grid connection), W
    ocpp_limit: ExternalLimit | None = None
    operator_limit_w: float | None = None


@dataclass(frozen=True)
class AllocationSettings:
    policy: Policy = Policy.EQUAL_SHARE
    module_dwell_s: float = 30.0
    dc_min_w: Mapping[Standard, float] = field(default_factory=dict)  # default 0 W
    ac_min_current_a: float = 6.0
    unused_margin_w: float = 3000.0


@dataclass(frozen=True)
class AllocationInput:
    station: StationInput
    connectors: tuple[ConnectorInput, ...]
    modules: tuple[ModuleInput, ...] = ()
    settings: AllocationSettings = AllocationSettings()
    now: float = 0.0


@dataclass(frozen=True)
class ConnectorAllocation:
    connector_id: int
    power_w: float
    current_limit_a: float | None = None  # AC: per phase
    waiting: WaitReason | None = None

    @property
    def suspended_evse(self) -> bool:
        return self.waiting is not None


@dataclass(frozen=True)
class ModuleAssignment:
    name: str
    connector_id: int | None
    since: float
    for_minimum: bool = False  # moved inside its dwell time to give a waiting EV its minimum


@dataclass(frozen=True)
class GroupSetpoint:
    """The modules serving one DC connector: one voltage, the current shared by rating."""

    connector_id: int
    modules: tuple[str, ...]
    voltage_v: float | None  # None until the EV gives its target voltage: then 0 A
    current_a: float
    module_current_a: tuple[float, ...]  # per module, in `modules` order


@dataclass(frozen=True)
class AllocationResult:
    connectors: tuple[ConnectorAllocation, ...]
    modules: tuple[ModuleAssignment, ...]
    groups: tuple[GroupSetpoint, ...]
    budget_w: float
    budget_a: float

    def connector(self, connector_id: int) -> ConnectorAllocation:
        return next(c for c in self.connectors if c.connector_id == connector_id)

    def modules_of(self, connector_id: int) -> tuple[str, ...]:
        return tuple(m.name for m in self.modules if m.connector_id == connector_id)


@dataclass(frozen=True)
class _Claim:
    """One connector's want this cycle, before sharing."""

    connector: ConnectorInput
    min_w: float
    cap_w: float  # its real cap
    capped_w: float  # cap after the measured-consumption rule
    amps_per_w: float  # per-phase current each watt costs the station
    waiting: WaitReason | None = None


def allocate_power(request: AllocationInput) -> AllocationResult:
    budget_w, budget_a = _budget(request)
    sessions = {c.connector_id: c.target_voltage_v for c in request.connectors
                if c.session_started_at is not None}
    plan = ModulePlan(request.modules, request.station.matrix, request.now, request.settings.module_dwell_s,
                      sessions)
    claims = [_claim(c, request, plan) for c in request.connectors]
    order = sorted((c for c in claims if c.cap_w > 0 or c.waiting),
                   key=lambda c: (c.connector.session_started_at, c.connector.connector_id))
    admitted, waiting = _admit(order, budget_w, budget_a, plan)
    costs, policy = _costs(admitted, plan), request.settings.policy
    budgets = (budget_w, budget_a, *(capacity for _, capacity in plan.pools()))
    targets = _share_twice(admitted, {}, budgets, costs, policy)
    plan.keep_and_fill([c.connector.connector_id for c in admitted if c.connector.uses_modules], targets)
    powers = _final_powers(admitted, plan, budgets, costs, policy)
    for claim in admitted:  # admitted with a zero minimum but nothing left for it
        if powers[claim.connector.connector_id] <= EPSILON_W:
            waiting[claim.connector.connector_id] = WaitReason.STATION_FULL
    return _result(request, powers, waiting, plan, budget_w, budget_a)


def _budget(request: AllocationInput) -> tuple[float, float]:
    station, now = request.station, request.now
    limits = [station.limit_w, station.operator_limit_w]
    if station.ocpp_limit is not None and station.ocpp_limit.active(now):
        limits.append(station.ocpp_limit.limit_w)
    other_w = 0.0
    if station.meter_w is not None:
        ours = sum(c.measured_w or 0.0 for c in request.connectors)
        other_w = max(station.meter_w - ours, 0.0)
    budget_w = max(min(x for x in limits if x is not None) - other_w, 0.0)
    if station.limit_a is None:
        return budget_w, math.inf
    return budget_w, max(station.limit_a - other_w / (DC_PHASES * station.phase_voltage_v), 0.0)


def _claim(connector: ConnectorInput, request: AllocationInput, plan: ModulePlan) -> _Claim:
    settings, now = request.settings, request.now
    if connector.is_dc:
        amps_per_w = 1 / (DC_PHASES * request.station.phase_voltage_v)
        min_w = connector.ev_min_w if connector.ev_min_w is not None else settings.dc_min_w.get(
            connector.standard, 0.0)
    else:
        amps_per_w = 1 / (connector.phases * connector.phase_voltage_v)
        min_w = max(connector.ev_min_w or 0.0, settings.ac_min_current_a / amps_per_w)
    if connector.session_started_at is None or connector.demand_w <= 0:
        return _Claim(connector, min_w, 0.0, 0.0, amps_per_w)
    limits = [connector.limit_w, connector.operator_limit_w]
    if connector.limit_a is not None and not connector.is_dc:
        limits.append(connector.limit_a / amps_per_w)
    if connector.ocpp_limit is not None and connector.ocpp_limit.active(now):
        limits.append(connector.ocpp_limit.limit_w)
    limit_w = min(x for x in limits if x is not None)
    if limit_w < min_w:
        return _Claim(connector, min_w, 0.0, 0.0, amps_per_w, WaitReason.LIMIT_BELOW_MINIMUM)
    cap_w = max(min(limit_w, connector.demand_w), min_w)
    if connector.uses_modules:
        reach_w = plan.reachable_w(connector.connector_id)
        if reach_w < max(min_w, EPSILON_W):
            return _Claim(connector, min_w, 0.0, 0.0, amps_per_w, WaitReason.NO_MODULE)
        cap_w = min(cap_w, reach_w)
    return _Claim(connector, min_w, cap_w, _measured_cap(connector, min_w, cap_w, settings), amps_per_w)


def _measured_cap(connector: ConnectorInput, min_w: float, cap_w: float,
                  settings: AllocationSettings) -> float:
    measured, margin = connector.measured_w, settings.unused_margin_w
    if measured is None or connector.previous_w <= 0 or measured >= connector.previous_w - margin:
        return cap_w
    return min(cap_w, max(min_w, measured + margin))


def _admit(order: list[_Claim], budget_w: float, budget_a: float,
           plan: ModulePlan) -> tuple[list[_Claim], dict[int, WaitReason]]:
    admitted: list[_Claim] = []
    waiting: dict[int, WaitReason] = {}
    used_w = used_a = 0.0
    for claim in order:
        cid = claim.connector.connector_id
        if claim.waiting is not None:
            waiting[cid] = claim.waiting
        elif used_w + claim.min_w > budget_w or used_a + claim.min_w * claim.amps_per_w > budget_a:
            waiting[cid] = WaitReason.STATION_FULL
        elif claim.connector.uses_modules and not plan.reserve_minimum(cid, claim.min_w):
            waiting[cid] = WaitReason.NO_MODULE
        else:
            admitted.append(claim)
            used_w += claim.min_w
            used_a += claim.min_w * claim.amps_per_w
    return admitted, waiting


def _costs(admitted: list[_Claim], plan: ModulePlan) -> dict[int, tuple[float, ...]]:
    """Per watt: 1 W of station power, its per-phase amperes, 1 W of its pool of modules."""
    pools = plan.pools()
    return {c.connector.connector_id: (1.0, c.amps_per_w, *(float(c.connector.connector_id in members)
                                                          for members, _ in pools)) for c in admitted}


def _share_twice(admitted: list[_Claim], capacity: Mapping[int, float], budgets: Sequence[float],
                 costs: Mapping[int, tuple[float, ...]], policy: Policy) -> dict[int, float]:
    """Rule 5: share with the measured caps, then give what is left back up to the real caps."""
    def claim_share(claim: _Claim, floor_w: float, cap_w: float) -> Share:
        cid = claim.connector.connector_id
        return Share(cid, floor_w, min(cap_w, capacity.get(cid, math.inf)), costs[cid])

    first_come = policy == Policy.FIRST_COME
    first = share([claim_share(c, c.min_w, c.capped_w) for c in admitted], budgets, first_come)
    return share([claim_share(c, first[c.connector.connector_id], c.cap_w) for c in admitted], budgets,
                 first_come)


def _final_powers(admitted: list[_Claim], plan: ModulePlan, budgets: Sequence[float],
                  costs: Mapping[int, tuple[float, ...]], policy: Policy) -> dict[int, float]:
    """Share again within what the assigned modules give; while a DC connector is held back by
    its modules and budget is left, connect one more free module to it and share again."""
    dc_ids = [c.connector.connector_id for c in admitted if c.connector.uses_modules]
    caps = {c.connector.connector_id: c.cap_w for c in admitted}
    while True:
        plan.hold_unsettled()
        capacity = {cid: plan.capacity_w(cid) for cid in dc_ids}
        powers = _share_twice(admitted, capacity, budgets, costs, policy)
        left_w = budgets[0] - sum(powers.values())
        left_a = budgets[1] - sum(powers[cid] * costs[cid][1] for cid in powers)
        if left_w <= EPSILON_W or left_a <= 1e-9:
            return powers
        starved = [cid for cid in dc_ids
                   if powers[cid] >= capacity[cid] - EPSILON_W and capacity[cid] < caps[cid]]
        if not any(plan.add_free_module(cid) for cid in starved):
            return powers


def _result(request: AllocationInput, powers: Mapping[int, float], waiting: Mapping[int, WaitReason],
            plan: ModulePlan, budget_w: float, budget_a: float) -> AllocationResult:
    connectors = []
    for connector in request.connectors:
        power = powers.get(connector.connector_id, 0.0)
        amps = None if connector.is_dc else power / (connector.phases * connector.phase_voltage_v)
        connectors.append(ConnectorAllocation(connector.connector_id, power, amps,
                                              waiting.get(connector.connector_id)))
    modules = tuple(ModuleAssignment(name, owner, since, name in plan.for_minimum)
                    for name, owner, since in plan.assignments())
    groups = tuple(_group(c, powers.get(c.connector_id, 0.0), plan) for c in request.connectors
                   if c.uses_modules and plan.modules_of(c.connector_id))
    return AllocationResult(tuple(connectors), modules, groups, budget_w, budget_a)


def _group(connector: ConnectorInput, power_w: float, plan: ModulePlan) -> GroupSetpoint:
    names = plan.modules_of(connector.connector_id)
    voltage = connector.target_voltage_v if connector.target_voltage_v else None
    current = power_w / voltage if voltage else 0.0
    capacities = [plan.module_capacity_w(name, connector.connector_id) for name in names]
    total = sum(capacities)
    per_module = tuple(current * capacity / total if total else 0.0 for capacity in capacities)
    return GroupSetpoint(connector.connector_id, names, voltage, current, per_module)


def settings_from_config(config: StationConfig) -> AllocationSettings:
    """`[allocation]` of station.toml as the engine's settings."""
    section = config.allocation
    return AllocationSettings(policy=Policy(section.policy), module_dwell_s=section.module_dwell_s,
                              dc_min_w=section.dc_min_power_w(), ac_min_current_a=section.ac_min_current_a,
                              unused_margin_w=section.unused_margin_kw * 1000)


def matrix_from_config(config: StationConfig) -> dict[int, frozenset[str]]:
    return {connector_id: frozenset(names) for connector_id, names in config.module_matrix().items()}
