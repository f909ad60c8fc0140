"""Golden scenarios at station level (issue 4, "Tests"): the five scenes that
tests/smartw/test_power_allocation.py checks on the allocation engine alone, here through
smartw's real control cycle (PowerControl.apply: allocation, module switching, controller
limits and module setpoints) over the in-memory physical station (station_model.py, driven by
the harness in station_scenarios.py).

Why again at station level: the engine only decides. Here a decision has to survive physics:
contacts one step behind their coils, modules whose output ramps at 30 A/s and 300 V/s, links
that close only at matched voltage and open only without current, EVs that draw what the
linked modules push, and the measured-consumption rule reading meters while currents ramp.
Every step also runs the harness's checks of safety invariants 1 and 3 (Station.tick:
check_limits after every control cycle, check_switching after every physics step), so each
story below holds them throughout.

Numbers shared by every story: 30 kW modules and 400 V batteries (a module gives 75 A = 30 kW
there), a control cycle every TICK_S = 0.2 s. Draws are compared once SETTLE_S has passed
since the last event: a module joining a live bus ramps its voltage 0 -> 400 V (1.3 s), its
link closes one step later, then its current ramps 0 -> 75 A (2.5 s). Settled, the model sits
exactly on its targets, so watts compare within the harness's TOLERANCE_W (1 W; the driver's
whole-mA setpoints are off by 0.2 mW per module).

Scenes 1 and 2 found two smartw defects, fixed since; their docstrings say what they were.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from bus.enums import ConnectorStatus, Standard
from bus.messages import LimitSource
from tests.smartw.station_model import DC_PHASES, MODULE_RAMP_A_PER_S, PHASE_VOLTAGE_V, ContactorKey
from tests.smartw.station_scenarios import (
    TICK_S,
    TOLERANCE_W,
    Station,
    StationSpec,
    begin_stop,
    connector_entry,
    module_links,
    plug_and_start,
    station_config,
)
from tests.smartw.test_station_invariants import run_for
from workers.common.power_config import link_key
from workers.smartw.limits import ScopeLimits
from workers.smartw.power_allocation import ExternalLimit, WaitReason
from workers.smartw.status import derive_status

BATTERY_400V = 4  # plug_and_start's byte `a`: a 400 V battery that asks for 400 V
SETTLE_S = 5.0  # voltage match 1.3 s + a contact step + a 75 A current ramp 2.5 s, rounded up
CHARGING, WAITING = ConnectorStatus.CHARGING, ConnectorStatus.SUSPENDED_EVSE
SIX_MODULES = tuple(f"pm{n}" for n in range(1, 7))


# ---- the station and what a reviewer looks at ----------------------------------------------------

def ccs(cid: int) -> dict[str, Any]:
    return connector_entry(cid, Standard.CCS, max_power_kw=150.0)


def build(connectors: list[dict[str, Any]], matrix: dict[int, list[int]], max_power_kw: float,
          max_current_a: float | None = None, **allocation: Any) -> Station:
    """A station of 30 kW modules (module number -> connectors its links reach), contacts one step late."""
    power_modules = {"channel": "/dev/null", "count": len(matrix), "rated_kw": 30.0,
                     "links": module_links(matrix)}
    grid = {"max_power_kw": max_power_kw, "max_current_a": max_current_a}
    config = station_config(connectors, station=grid, power_modules=power_modules, allocation=allocation)
    return Station.build(StationSpec(config, contact_delay=True, has_meter=False))


def every_module_to(count: int, *cids: int) -> dict[int, list[int]]:
    return {module: list(cids) for module in range(1, count + 1)}


def plug(station: Station, cid: int, demand_kw: float) -> None:
    """An EV with a 400 V battery asking `demand_kw`, and its session started."""
    plug_and_start(station, cid, BATTERY_400V, 0)
    station.model.evs[cid].demand_w = demand_kw * 1000
    assert station.connectors[cid].session is not None


def run_until(station: Station, t_s: float) -> None:
    run_for(station, t_s - station.model.now)


def run_watching(station: Station, seconds: float, check: Callable[[], None]) -> None:
    """run_for, calling `check` after every step."""
    for _ in range(round(seconds / TICK_S)):
        run_for(station, TICK_S)
        check()


def linked(station: Station) -> dict[int, set[str]]:
    """The modules each DC connector's link contacts join to it (physically, in the model)."""
    model = station.model
    return {cid: {name for name in names if model.links[link_key(name, cid)].contact}
            for cid, names in model.matrix.items()}


def offered_w(station: Station) -> dict[int, float]:
    """Each charge controller's power limit (0 when disabled)."""
    return {cid: controller.offered_w for cid, controller in station.model.controllers.items()}


def drawn_w(station: Station) -> dict[int, float]:
    return {cid: station.model.connector_power_w(cid) for cid in station.model.connector_ids}


def watts(**kw: float) -> Any:
    """Expected watts per connector from kW (`c1=120` -> {1: 120_000 W}), within TOLERANCE_W."""
    return pytest.approx({int(key[1:]): value * 1000 for key, value in kw.items()}, abs=TOLERANCE_W)


def amps(station: Station, *names: str) -> list[float]:
    """What the named modules measure now."""
    return [station.model.modules[name].current_a for name in names]


def setpoints_a(station: Station, *names: str) -> list[float]:
    """The current setpoints smartw last sent to the named modules."""
    bank, modules = station.bank, station.model.modules
    return [bank.setpoint(modules[name].address).current_ma / 1000 for name in names]


def status(station: Station, cid: int) -> ConnectorStatus:
    return derive_status(station.connectors[cid].facts(None)).status


def moves(station: Station) -> list[tuple[ContactorKey, bool]]:
    """Every contact that moved, in order (each checked at zero current by the harness)."""
    return [(switching.key, switching.closed) for switching in station.model.switchings]


def ramp_s(delta_a: float) -> float:
    """A whole number of cycles covering a module current change of `delta_a`."""
    return math.ceil(abs(delta_a) / (MODULE_RAMP_A_PER_S * TICK_S)) * TICK_S


# ---- 1. two DC EVs share six modules ---------------------------------------------------------------

def two_evs_within_the_dwell() -> Station:
    """150 kW station, two CCS connectors, six 30 kW modules that reach both (default 30 s dwell)."""
    station = build([ccs(1), ccs(2)], every_module_to(6, 1, 2), max_power_kw=150)
    plug(station, 1, demand_kw=120)
    run_for(station, 10.0)
    # The first EV takes what it asks: 120 kW on four modules at 75 A; pm5 and pm6 stay idle.
    assert linked(station) == {1: {"pm1", "pm2", "pm3", "pm4"}, 2: set()}
    assert offered_w(station) == watts(c1=120, c2=0) and drawn_w(station) == watts(c1=120, c2=0)
    plug(station, 2, demand_kw=120)  # t = 10 s
    run_for(station, 10.0)
    # An equal share is 75 kW each, but pm1..pm4 stay on connector 1 for their dwell (linked at
    # t = 1.8 s, so until 31.8 s): connector 2 gets the two idle modules at once, 60 kW, and
    # connector 1 is throttled to the rest, 150 - 60 = 90 kW on its four (56.25 A each).
    assert linked(station) == {1: {"pm1", "pm2", "pm3", "pm4"}, 2: {"pm5", "pm6"}}
    assert offered_w(station) == watts(c1=90, c2=60) and drawn_w(station) == watts(c1=90, c2=60)
    assert amps(station, *SIX_MODULES) == pytest.approx([56.25] * 4 + [75.0] * 2)
    assert (status(station, 1), status(station, 2)) == (CHARGING, CHARGING)
    return station


def test_two_dc_evs_the_first_takes_what_it_asks_the_second_gets_the_idle_modules_at_once() -> None:
    station = two_evs_within_the_dwell()
    assert moves(station) == [(1, True), ("pm1>1", True), ("pm2>1", True), ("pm3>1", True), ("pm4>1", True),
                              (2, True), ("pm5>2", True), ("pm6>2", True)]


def test_after_the_dwell_two_dc_evs_rebalance_to_an_equal_share_without_switching_under_load() -> None:
    """The dwell ends at t = 31.8 s and pm4 moves to connector 2. While it joins, connector 2's
    current stays on pm5 and pm6 (a joining module gets 0 A), so connector 2 draws what it was
    given and the measured-consumption rule does not hand pm4 back (found here as a livelock:
    pm4 flipping between the connectors every cycle)."""
    station = two_evs_within_the_dwell()
    run_for(station, 20.0)  # t = 40 s: the dwell ended at 31.8 s, a move takes less than SETTLE_S
    # 75 kW each is 2.5 modules' worth: pm4 ramps to zero, its link opens, it matches 400 V and joins.
    assert linked(station) == {1: {"pm1", "pm2", "pm3"}, 2: {"pm4", "pm5", "pm6"}}
    assert offered_w(station) == watts(c1=75, c2=75) and drawn_w(station) == watts(c1=75, c2=75)
    assert moves(station)[-2:] == [("pm4>1", False), ("pm4>2", True)]


# ---- 2. AC and DC at once under a per-phase current limit ------------------------------------------

def grid_phase_a(station: Station) -> float:
    """The most loaded grid phase: DC draws evenly from three (P / 690 V), the single-phase AC
    connector sits on one of them."""
    model = station.model
    return model.connector_power_w(1) / (DC_PHASES * PHASE_VOLTAGE_V) + model.own_current_a[2]


def check_grid(station: Station) -> Callable[[], None]:
    def check() -> None:
        phase_a = grid_phase_a(station)
        assert phase_a <= 150.0 + 1e-6, f"{phase_a:.1f} A on a phase at t={station.model.now:.1f} s"
    return check


def dc_then_ac() -> Station:
    """Grid: 100 kW and 150 A per phase. Connector 1: CCS on six modules of its own. Connector 2:
    single-phase Type 2, 7.4 kW and 32 A. The grid's phases are watched at every step."""
    ac = connector_entry(2, Standard.TYPE2, max_power_kw=7.4, phases=1, max_current_a=32.0)
    station = build([ccs(1), ac], every_module_to(6, 1), max_power_kw=100, max_current_a=150.0)
    plug(station, 1, demand_kw=120)
    run_watching(station, 10.0, check_grid(station))
    # The kW limit binds: 100 kW (150 A x 690 V would allow 103.5 kW), four modules at 62.5 A, 144.9 A.
    assert offered_w(station) == watts(c1=100, c2=0) and drawn_w(station) == watts(c1=100, c2=0)
    assert linked(station) == {1: {"pm1", "pm2", "pm3", "pm4"}}
    plug(station, 2, demand_kw=11)  # t = 10 s
    run_watching(station, 10.0, check_grid(station))
    # The AC EV may take 32 A x 230 V = 7.36 kW, and those 32 A load one phase: the DC connector
    # keeps (150 - 32) A x 690 V = 81.42 kW. Now the current binds, not the power: 88.78 kW in all.
    assert offered_w(station) == watts(c1=81.42, c2=7.36) and drawn_w(station) == watts(c1=81.42, c2=7.36)
    assert station.control.last is not None and station.control.last.connector(2).current_limit_a == 32.0
    assert grid_phase_a(station) == pytest.approx(150.0)
    assert linked(station) == {1: {"pm1", "pm2", "pm3", "pm4"}}  # dwell: pm4 stays, each gives 50.9 A
    assert (status(station, 1), status(station, 2)) == (CHARGING, CHARGING)
    return station


def test_ac_and_dc_at_once_stay_within_the_grids_kw_and_amperes_per_phase() -> None:
    station = dc_then_ac()
    begin_stop(station, 2, unplug_after=True)  # t = 20 s: the AC EV leaves
    run_watching(station, SETTLE_S, check_grid(station))
    # The DC connector gets its 100 kW back on the same four modules.
    assert offered_w(station) == watts(c1=100, c2=0) and drawn_w(station) == watts(c1=100, c2=0)
    assert station.connectors[2].session is None and status(station, 2) is ConnectorStatus.AVAILABLE
    assert moves(station)[-1] == (2, False)


def test_the_grid_current_stays_within_its_limit_when_a_module_leaves_a_loaded_connector() -> None:
    """At t = 31.8 s pm4's dwell ends and the allocation needs only three modules for 81.42 kW:
    pm4 goes to 0 A and pm1..pm3 rise only by what pm4 has shed (found here as an overshoot:
    raising them at once let the connector draw 91 kW of 81.42 and a phase carry 169 A of 150)."""
    station = dc_then_ac()
    run_watching(station, 20.0, check_grid(station))
    assert linked(station) == {1: {"pm1", "pm2", "pm3"}}


# ---- 3. an OCPP limit drops mid-session and expires ------------------------------------------------

def limit(station: Station, kw: float, source: LimitSource, lasts_s: float) -> ExternalLimit:
    return ExternalLimit(kw * 1000, source.value, station.clock() + lasts_s)


def check_no_rise_above(station: Station, before: dict[int, float]) -> Callable[[], None]:
    """While the modules follow a lower limit, no connector draws more than it did before."""
    def check() -> None:
        for cid, drawn in drawn_w(station).items():
            assert drawn <= before[cid] + TOLERANCE_W, f"connector {cid} rose to {drawn:.0f} W"
    return check


def test_an_ocpp_limit_station_wide_then_per_connector_drops_mid_session_and_power_returns() -> None:
    station = build([ccs(1), ccs(2)], every_module_to(6, 1, 2), max_power_kw=150)
    plug(station, 1, demand_kw=120)
    plug(station, 2, demand_kw=120)  # both at t = 0: minimums first (pm1, pm2), then in name order
    run_until(station, 5.0)
    modules = {1: {"pm1", "pm3", "pm4"}, 2: {"pm2", "pm5", "pm6"}}  # stay put: every phase is in the dwell
    assert linked(station) == modules and drawn_w(station) == watts(c1=75, c2=75)
    before = drawn_w(station)

    station.limits = replace(station.limits, station=ScopeLimits(
        ocpp_limit=limit(station, 100, LimitSource.OCPP_CHARGE_POINT_MAX, 10.1)))  # until t = 15.1 s
    run_for(station, TICK_S)
    # Within one cycle: 50 kW each, every module set to 50 kW / 400 V / 3 = 41.67 A.
    assert offered_w(station) == watts(c1=50, c2=50)
    assert setpoints_a(station, *SIX_MODULES) == pytest.approx([125 / 3] * 6, abs=0.001)
    run_watching(station, ramp_s(75 - 125 / 3), check_no_rise_above(station, before))
    assert drawn_w(station) == watts(c1=50, c2=50)
    run_until(station, 15.0)
    assert offered_w(station) == watts(c1=50, c2=50)
    run_for(station, TICK_S)  # t = 15.2 s, the first cycle after the expiry
    assert offered_w(station) == watts(c1=75, c2=75)
    run_for(station, ramp_s(75 - 125 / 3))
    assert drawn_w(station) == watts(c1=75, c2=75)

    run_until(station, 17.0)
    station.limits = replace(station.limits, connectors={1: ScopeLimits(
        ocpp_limit=limit(station, 30, LimitSource.OCPP_TX, 8.1))})  # until t = 25.1 s
    run_for(station, TICK_S)
    # Connector 1 gets 30 kW (25 A per module); connector 2 takes what that frees, up to its three
    # modules' 90 kW (75 A each): the station's 150 kW are not reached, nobody else may take them.
    assert offered_w(station) == watts(c1=30, c2=90)
    assert setpoints_a(station, "pm1", "pm3", "pm4", "pm2", "pm5", "pm6") == pytest.approx(
        [25.0] * 3 + [75.0] * 3, abs=0.001)
    run_for(station, ramp_s(62.5 - 25))
    assert drawn_w(station) == watts(c1=30, c2=90)
    run_until(station, 25.0)
    assert offered_w(station) == watts(c1=30, c2=90)
    run_for(station, TICK_S)  # t = 25.2 s, the first cycle after the expiry
    assert offered_w(station) == watts(c1=75, c2=75)
    # Within 2 s both draw 75 kW again: the 1.25 s ramp, while the measured-consumption rule holds
    # connector 1 at its measured power + 3 kW for a few cycles (its modules climb 7.2 kW a cycle).
    run_for(station, 2.0)
    assert offered_w(station) == watts(c1=75, c2=75) and drawn_w(station) == watts(c1=75, c2=75)
    assert linked(station) == modules


# ---- 4. a third EV arrives when the station is full ------------------------------------------------

def two_evs_fill_the_station(dc_minimum_kw: float) -> Station:
    """150 kW station, three CCS connectors, six modules that reach all three. Two EVs take
    75 kW each: pm1..pm3 on connector 1 (linked at 1.8 s), pm4..pm6 on connector 2 (at 6.8 s)."""
    station = build([ccs(1), ccs(2), ccs(3)], every_module_to(6, 1, 2, 3), max_power_kw=150,
                    min_power_kw={Standard.CCS.value: dc_minimum_kw})
    plug(station, 1, demand_kw=75)
    run_for(station, 5.0)
    plug(station, 2, demand_kw=75)
    run_for(station, 5.0)
    assert linked(station) == {1: {"pm1", "pm2", "pm3"}, 2: {"pm4", "pm5", "pm6"}, 3: set()}
    assert offered_w(station) == watts(c1=75, c2=75, c3=0) and drawn_w(station) == watts(c1=75, c2=75, c3=0)
    return station


def test_a_third_ev_at_a_full_station_gets_its_minimum_by_throttling_the_others_never_stopping_them() -> None:
    station = two_evs_fill_the_station(dc_minimum_kw=20)
    plug(station, 3, demand_kw=75)  # t = 10 s; every module is inside its dwell
    run_for(station, TICK_S)
    # Its 20 kW minimum needs a module: the earlier minimums hold pm1 and pm4, so pm2 moves inside
    # its dwell (for_minimum). An equal share would be 50 kW each; connector 3 has one module
    # (30 kW), the rest is shared by the two others: 60 kW each, connector 1 on pm1 and pm3.
    assert offered_w(station) == watts(c1=60, c2=60, c3=30)
    assert station.control.last is not None
    assert [m.name for m in station.control.last.modules if m.for_minimum] == ["pm2"]
    run_for(station, 10.0)  # pm2 ramps to zero, leaves, matches 400 V, joins connector 3, ramps up
    assert linked(station) == {1: {"pm1", "pm3"}, 2: {"pm4", "pm5", "pm6"}, 3: {"pm2"}}
    assert drawn_w(station) == watts(c1=60, c2=60, c3=30)
    assert all(station.connectors[cid].session is not None for cid in (1, 2, 3))
    assert [status(station, cid) for cid in (1, 2, 3)] == [CHARGING] * 3
    assert moves(station)[-3:] == [(3, True), ("pm2>1", False), ("pm2>3", True)]


def test_a_third_ev_waits_with_0_w_when_minimums_do_not_fit_and_resumes_when_a_session_ends() -> None:
    station = two_evs_fill_the_station(dc_minimum_kw=60)
    plug(station, 3, demand_kw=75)  # t = 10 s: three minimums of 60 kW need 180 kW of 150
    run_for(station, SETTLE_S)
    # It waits: its controller offers 0 W (SuspendedEVSE); the two others keep their 75 kW.
    assert station.control.last is not None
    assert station.control.last.connector(3).waiting is WaitReason.STATION_FULL
    assert offered_w(station) == watts(c1=75, c2=75, c3=0) and drawn_w(station) == watts(c1=75, c2=75, c3=0)
    assert [status(station, cid) for cid in (1, 2, 3)] == [CHARGING, CHARGING, WAITING]
    assert station.connectors[3].session is not None and station.model.contactors[3].contact
    begin_stop(station, 1, unplug_after=True)  # t = 15 s
    run_for(station, 3 * SETTLE_S)
    # Connector 1 ramps to zero and opens; its modules, free again, join connector 3: 75 kW.
    assert station.connectors[1].session is None and status(station, 1) is ConnectorStatus.AVAILABLE
    assert linked(station) == {1: set(), 2: {"pm4", "pm5", "pm6"}, 3: {"pm1", "pm2", "pm3"}}
    assert offered_w(station) == watts(c1=0, c2=75, c3=75) and drawn_w(station) == watts(c1=0, c2=75, c3=75)
    assert [status(station, cid) for cid in (2, 3)] == [CHARGING, CHARGING]


# ---- 5. a module fails mid-session -----------------------------------------------------------------

def charging_on_three_of_four_modules() -> Station:
    """One CCS connector, four modules, a 150 kW station: the EV asks 90 kW, pm1..pm3 give it,
    pm4 is idle."""
    station = build([ccs(1)], every_module_to(4, 1), max_power_kw=150)
    plug(station, 1, demand_kw=90)
    run_for(station, 10.0)
    assert linked(station) == {1: {"pm1", "pm2", "pm3"}}
    assert offered_w(station) == watts(c1=90) and drawn_w(station) == watts(c1=90)
    return station


def test_a_failed_module_is_unlinked_without_current_and_an_idle_one_replaces_it() -> None:
    station = charging_on_three_of_four_modules()
    station.model.modules["pm2"].faulted = True  # t = 10 s: a protection trip cuts its output at once
    run_for(station, TICK_S)
    assert drawn_w(station) == watts(c1=60) and amps(station, "pm2") == [0.0]  # the EV lost pm2's share
    run_for(station, 6.0)  # pm4: 1.3 s to 400 V, link, 2.5 s to 75 A
    assert linked(station) == {1: {"pm1", "pm3", "pm4"}}
    assert offered_w(station) == watts(c1=90) and drawn_w(station) == watts(c1=90)
    station.model.modules["pm3"].faulted = True  # t = 16.2 s: nothing idle is left to replace it
    run_for(station, TICK_S)
    # Its share goes at once, in the same cycle: the controller is lowered to pm1 + pm4 = 60 kW.
    assert offered_w(station) == watts(c1=60) and drawn_w(station) == watts(c1=60)
    run_for(station, SETTLE_S)
    assert linked(station) == {1: {"pm1", "pm4"}} and drawn_w(station) == watts(c1=60)
    assert moves(station) == [(1, True), ("pm1>1", True), ("pm2>1", True), ("pm3>1", True),
                              ("pm2>1", False), ("pm4>1", True), ("pm3>1", False)]


def test_while_a_replacement_module_joins_the_controller_keeps_its_share() -> None:
    """By design: when pm2 trips, the idle pm4 takes its place in the same cycle and the
    allocation counts it at once, so the controller keeps offering 90 kW while pm4 reaches
    400 V and links; the EV draws what the linked modules give (60 kW) meanwhile, never more
    than offered, and is back at 90 kW once pm4 delivers. Lowering the offer for those seconds
    would only make the EV ramp twice."""
    station = charging_on_three_of_four_modules()
    station.model.modules["pm2"].faulted = True
    run_for(station, TICK_S)
    assert offered_w(station) == watts(c1=90) and drawn_w(station) == watts(c1=60)
    run_for(station, 6.0)
    assert offered_w(station) == watts(c1=90) and drawn_w(station) == watts(c1=90)
