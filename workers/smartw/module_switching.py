"""Moving a DC power module between connectors without switching a contactor under load
(safety invariant 3): one step per control cycle from what is known now toward where the
allocation wants the module. Pure, so the invariant is property-tested over random sequences
(tests/smartw/test_module_switching.py) and the control cycle only carries out the steps.

A module's link contactor (the matrix, station.toml `[[power_modules.links]]`) is switched only
when no current flows through it:
- Leaving a connector: the module's current setpoint goes to zero; its link opens once the
  module measures at most `ZERO_CURRENT_A` in a reading taken after that setpoint went out
  (it has been held for `settle_s`, a poll period and an answer: a reading from before the
  command may show a low current that an EV's rising demand has already raised), or once it
  has been silent for `off_after_s`: its own silence timeout plus the time its output takes to
  fall (it has switched itself off and ramped down by then, so nothing flows).
- Joining a connector: the module is brought to that connector's bus voltage with zero current
  (switched off for a dead bus); its link closes once the measured output voltage is within
  `voltage_tolerance_v` of the bus in a reading taken once the module holds that very setpoint
  (the same on/off and voltage within `SETPOINT_DRIFT_V`, for `settle_s`): an older reading may
  match while the output is still moving; one taken after it, on an output that only approaches
  its setpoint, stays matched. And only
  when no other link of the module is closed or commanded or reads closed on its feedback
  contact (a module is never on two connectors).
- On its connector: the group's voltage and the module's share of the current; before the EV
  has given a target voltage, the bus's voltage at 0 A (switched off on a dead bus, so nothing
  energises a connector's bus before its EV asks).
A module without a fresh reading is never linked anywhere new: its voltage is unknown.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

ZERO_CURRENT_A = 1.0  # a module measuring this little may have its link switched
DEAD_BUS_V = 60.0  # a bus at or below this (DC SELV) counts as dead: join it switched off
VOLTAGE_MATCH_V = 10.0  # join a live bus this close to its voltage (or within 2 % of it)
VOLTAGE_MATCH_SHARE = 0.02
SETPOINT_DRIFT_V = 2.0  # a held voltage setpoint following its bus this closely counts as unchanged


@dataclass(frozen=True)
class ModuleState:
    """One module as the cycle sees it."""

    name: str
    links: frozenset[int]  # connectors whose link is commanded closed, reads closed or feeds back closed
    voltage_v: float | None  # measured output; None: no fresh reading
    current_a: float | None
    silent_s: float = 0.0  # since its last good reading
    off_after_s: float = 20.0  # silent this long, its output is off and has fallen to zero
    zeroed_for_s: float = 0.0  # how long its current setpoint has been 0 A (0: it carries a setpoint)
    held_on: bool = False  # the on/off and voltage setpoint it holds (the driver's) ...
    held_voltage_v: float = 0.0
    steady_for_s: float = 0.0  # ... and how long they have stayed so (within SETPOINT_DRIFT_V)
    settle_s: float = 0.0  # a setpoint held this long: the latest reading was taken after it went out


@dataclass(frozen=True)
class ModuleTarget:
    """Where the allocation wants the module: a connector (None: idle) and its setpoints there."""

    connector_id: int | None
    voltage_v: float | None = None  # the group's voltage; None: not known yet (the EV gave none)
    current_a: float = 0.0


@dataclass(frozen=True)
class ModuleStep:
    """What to command now: the module's output and the links that stay or become closed (every
    other link of the module opens)."""

    name: str
    on: bool
    voltage_v: float
    current_a: float
    links: frozenset[int] = frozenset()


def voltages_match(measured_v: float, bus_v: float) -> bool:
    return abs(measured_v - bus_v) <= max(VOLTAGE_MATCH_V, VOLTAGE_MATCH_SHARE * bus_v)


def current_stopped(state: ModuleState) -> bool:
    """No current flows through the module's links: measured near zero after its setpoint went
    to zero, or silent long enough."""
    if state.silent_s >= state.off_after_s:
        return True
    settled = state.zeroed_for_s >= state.settle_s
    return settled and state.current_a is not None and abs(state.current_a) <= ZERO_CURRENT_A


def next_step(state: ModuleState, target: ModuleTarget, bus_voltage_v: float) -> ModuleStep:
    """`bus_voltage_v`: the voltage on the target connector's DC bus now (0 for a dead bus)."""
    here = target.connector_id
    if state.links and state.links != {here}:
        return _leave(state)
    if here is None:
        return ModuleStep(state.name, False, 0.0, 0.0)
    if state.links == {here}:
        if target.voltage_v:
            return ModuleStep(state.name, True, target.voltage_v, max(target.current_a, 0.0), state.links)
        live = bus_voltage_v > DEAD_BUS_V  # no voltage from the EV yet: hold the bus as it is
        return ModuleStep(state.name, live, bus_voltage_v if live else 0.0, 0.0, state.links)
    return _join(state, here, bus_voltage_v)


def _leave(state: ModuleState) -> ModuleStep:
    """Current to zero at the voltage it has; its links open only once nothing flows."""
    if not current_stopped(state):
        return ModuleStep(state.name, True, state.voltage_v or 0.0, 0.0, state.links)
    return ModuleStep(state.name, False, 0.0, 0.0)


def _join(state: ModuleState, connector_id: int, bus_voltage_v: float) -> ModuleStep:
    dead = bus_voltage_v <= DEAD_BUS_V
    on, setpoint = (False, 0.0) if dead else (True, bus_voltage_v)
    if state.voltage_v is None:
        return ModuleStep(state.name, on, setpoint, 0.0)
    settled = (state.steady_for_s >= state.settle_s and state.held_on == on
               and abs(state.held_voltage_v - setpoint) <= SETPOINT_DRIFT_V)
    matched = state.voltage_v <= DEAD_BUS_V if dead else voltages_match(state.voltage_v, bus_voltage_v)
    linked = frozenset({connector_id}) if matched and settled else frozenset()
    return ModuleStep(state.name, on, setpoint, 0.0, linked)


def links_of(name: str, closed: AbstractSet[tuple[str, int]]) -> frozenset[int]:
    """The connectors among `closed` (module, connector) pairs that this module is on."""
    return frozenset(connector_id for module, connector_id in closed if module == name)
