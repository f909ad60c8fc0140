"""The module switching rules (workers/smartw/module_switching.py) on the cases a technician
would check first; tests/smartw/test_station_invariants.py runs them over random sequences."""

from __future__ import annotations

from workers.smartw.module_switching import ModuleState, ModuleStep, ModuleTarget, next_step


def state(links: set[int], voltage_v: float | None = 400.0, current_a: float | None = 0.0,
          silent_s: float = 0.0) -> ModuleState:
    return ModuleState("pm1", frozenset(links), voltage_v, current_a, silent_s, off_after_s=12.0)


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
    step = next_step(state(set(), voltage_v=3.0), ModuleTarget(2, None, 0.0), bus_voltage_v=0.0)
    assert step == ModuleStep("pm1", False, 0.0, 0.0, frozenset({2}))
    charged = next_step(state(set(), voltage_v=300.0), ModuleTarget(2, None, 0.0), bus_voltage_v=0.0)
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
