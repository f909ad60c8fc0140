"""The module switching rules (workers/smartw/module_switching.py) on the cases a technician
would check first; tests/smartw/test_station_invariants.py runs them over random sequences."""

from __future__ import annotations

from workers.smartw.module_switching import ModuleState, ModuleStep, ModuleTarget, next_step


def state(links: set[int], voltage_v: float | None = 400.0, current_a: float | None = 0.0,
          silent_s: float = 0.0, *, held: tuple[bool, float] = (True, 480.0), steady_for_s: float = 1.0,
          zeroed_for_s: float = 1.0) -> ModuleState:
    """A module that has held `held` (on, V) for `steady_for_s` and a zero current setpoint for
    `zeroed_for_s`; a reading is trusted once a setpoint has been held SETTLE_S."""
    return ModuleState("pm1", frozenset(links), voltage_v, current_a, silent_s, off_after_s=12.0,
                       zeroed_for_s=zeroed_for_s, held_on=held[0], held_voltage_v=held[1],
                       steady_for_s=steady_for_s, settle_s=SETTLE_S)


SETTLE_S = 0.7


def test_a_module_leaving_under_load_goes_to_zero_current_and_keeps_its_link() -> None:
    step = next_step(state({1}, current_a=40.0), ModuleTarget(2, 500.0, 30.0), bus_voltage_v=480.0)
    assert step == ModuleStep("pm1", True, 400.0, 0.0, frozenset({1}))


def test_its_link_opens_once_the_current_is_gone() -> None:
    step = next_step(state({1}, current_a=0.4), ModuleTarget(2, 500.0, 30.0), bus_voltage_v=480.0)
    assert step == ModuleStep("pm1", False, 0.0, 0.0, frozenset())


def test_a_silent_module_keeps_its_link_until_it_has_switched_itself_off_and_ramped_down() -> None:
    lost = next_step(state({1}, voltage_v=None, current_a=None, silent_s=11.0), ModuleTarget(None), 0.0)
    assert lost.links == {1}
    gone = next_step(state({1}, voltage_v=None, current_a=None, silent_s=12.0), ModuleTarget(None), 0.0)
    assert gone.links == frozenset()


def test_joining_a_live_bus_matches_its_voltage_before_the_link_closes() -> None:
    far = next_step(state(set(), voltage_v=120.0), ModuleTarget(2, 500.0, 30.0), bus_voltage_v=480.0)
    assert far == ModuleStep("pm1", True, 480.0, 0.0, frozenset())
    near = next_step(state(set(), voltage_v=476.0), ModuleTarget(2, 500.0, 30.0), bus_voltage_v=480.0)
    assert near == ModuleStep("pm1", True, 480.0, 0.0, frozenset({2}))


def test_joining_a_dead_bus_closes_the_link_with_the_module_off() -> None:
    off = (False, 0.0)
    step = next_step(state(set(), voltage_v=3.0, held=off), ModuleTarget(2, None, 0.0), bus_voltage_v=0.0)
    assert step == ModuleStep("pm1", False, 0.0, 0.0, frozenset({2}))
    charged = next_step(state(set(), voltage_v=300.0, held=(False, 0.0)), ModuleTarget(2, None, 0.0),
                        bus_voltage_v=0.0)
    assert charged.links == frozenset()  # its output is still charged: wait until it has fallen


def test_a_module_without_a_reading_is_never_linked_anywhere_new() -> None:
    step = next_step(state(set(), voltage_v=None, current_a=None), ModuleTarget(2, 500.0, 30.0), 480.0)
    assert step.links == frozenset()


def test_on_its_connector_it_takes_the_group_voltage_and_its_share() -> None:
    step = next_step(state({2}, current_a=12.0), ModuleTarget(2, 500.0, 30.0), bus_voltage_v=480.0)
    assert step == ModuleStep("pm1", True, 500.0, 30.0, frozenset({2}))
    unknown = next_step(state({2}), ModuleTarget(2, None, 0.0), bus_voltage_v=480.0)
    assert unknown == ModuleStep("pm1", True, 480.0, 0.0, frozenset({2}))  # the EV gave no voltage yet
    dead = next_step(state({2}, voltage_v=0.0), ModuleTarget(2, None, 0.0), bus_voltage_v=0.0)
    assert dead == ModuleStep("pm1", False, 0.0, 0.0, frozenset({2}))  # nothing energises the bus


def test_a_module_on_two_connectors_leaves_both_without_switching_under_load() -> None:
    step = next_step(state({1, 2}, current_a=20.0), ModuleTarget(2, 500.0, 30.0), bus_voltage_v=480.0)
    assert step.links == {1, 2} and step.current_a == 0.0


def test_a_low_current_read_before_the_zero_setpoint_went_out_does_not_open_the_link() -> None:
    """The reading may predate the zero command: an EV's rising demand may have raised the
    current since, so the link waits for a reading taken after the command."""
    early = next_step(state({1}, current_a=0.4, zeroed_for_s=0.0), ModuleTarget(None), 0.0)
    assert early == ModuleStep("pm1", True, 400.0, 0.0, frozenset({1}))
    later = next_step(state({1}, current_a=0.4, zeroed_for_s=SETTLE_S), ModuleTarget(None), 0.0)
    assert later.links == frozenset()


def test_a_matching_voltage_read_before_the_setpoint_is_held_does_not_close_the_link() -> None:
    """Falling from another bus, the output passes the new bus's voltage: a reading then says
    'matched' while the output goes on falling; only a reading once the new setpoint is held counts."""
    target = ModuleTarget(2, 500.0, 30.0)
    passing = next_step(state(set(), voltage_v=478.0, held=(False, 0.0)), target, 480.0)
    assert passing == ModuleStep("pm1", True, 480.0, 0.0, frozenset())
    fresh = next_step(state(set(), voltage_v=478.0, steady_for_s=0.2), target, 480.0)
    assert fresh.links == frozenset()
    held = next_step(state(set(), voltage_v=478.0, steady_for_s=SETTLE_S), target, 480.0)
    assert held.links == {2}
    drifting = next_step(state(set(), voltage_v=478.0, held=(True, 485.0)), target, 480.0)
    assert drifting.links == frozenset()  # the bus moved more than SETPOINT_DRIFT_V: a new setpoint
