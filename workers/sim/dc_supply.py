"""Which power module feeds which DC connector in the simulator: the contactor matrix's physics.

With `[power_modules]` in station.toml, a DC connector's EV gets current only from the modules
whose link contactor to that connector conducts (the IO module's model: coil, feedback delay,
faults, e-stop in the coil circuit) or, on a station without links, that are hard-wired to it.
Each tick the EV's wanted current (its session's current request within the controller's
limits) is offered to those modules as a `Load` at the battery's voltage, split by what each
can give (workers/sim/power_modules.py `available_a`: on, not faulted, online, voltage setpoint
at or above the battery's); every other module sees an open circuit. The EV then gets the sum
of the modules' actual currents: they ramp, so its current follows their ramp. The station
hands that sum to the controller as a current cap, so the controller's present current and
power, and the meter, show what the modules deliver.

A link that opens while its module carries current is logged at WARNING and counted
(`links_opened_under_load`): safety invariant 3 seen from the physical side. The e-stop cuts
every coil at once by design, so what it opens is logged but not counted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from workers.common.power_config import PowerModulesConfig, link_key
from workers.drivers.controllers.interface import SessionPhase
from workers.sim.ev_controller import SimulatedController
from workers.sim.io_module import SimIoModule
from workers.sim.power_modules import Load, PowerModuleBank, SimulatedPowerModule

log = logging.getLogger(__name__)

UNDER_LOAD_A = 1.0  # a link opening while its module carries more than this opens under load
_DRAWING_PHASES = frozenset({SessionPhase.CHARGING, SessionPhase.PAUSED_BY_EV})


@dataclass(frozen=True)
class EvLoad:
    """What an EV on a DC connector asks of the modules feeding it."""

    battery_voltage_v: float
    wanted_a: float


def ev_load(controller: SimulatedController) -> EvLoad | None:
    """The EV's wanted current within the controller's limits; None when no session draws
    current (precharge and cable check stay the controller's own model)."""
    session, ev = controller.view(), controller.ev
    if session is None or ev is None or session.phase not in _DRAWING_PHASES:
        return None
    limits = controller.command.limits
    wanted_a = session.demand.target_current_a or 0.0
    if limits.current_a is not None:
        wanted_a = min(wanted_a, limits.current_a)
    if limits.power_w is not None:
        wanted_a = min(wanted_a, ev.battery.current_for_power_a(limits.power_w))
    return EvLoad(ev.battery.open_circuit_voltage_v(), max(wanted_a, 0.0))


class ModuleSupply:
    """The modules of one bank, the connectors they can reach and the links between them."""

    def __init__(self, config: PowerModulesConfig, matrix: Mapping[int, tuple[str, ...]],
                 io: SimIoModule, bank: PowerModuleBank) -> None:
        self._pairs = [(module, connector) for connector, modules in matrix.items() for module in modules]
        self._hard_wired = not config.links
        self._io = io
        self._bank = bank
        self._connected: set[tuple[str, int]] = set()
        self._feeds: dict[str, int] = {}  # module -> the connector whose EV it carries
        self._shared: set[str] = set()  # modules linked to two connectors at once
        self.links_opened_under_load = 0

    def update(self, loads: Mapping[int, EvLoad | None], *, estop: bool) -> None:
        """One tick: note links that opened, then offer each EV's load to its modules and an
        open circuit to every other module. `loads`: DC connector id -> its EV's load, None
        while its contactor is open or its EV draws nothing."""
        connected = {pair for pair in self._pairs if self._hard_wired or self._io.link_conducts(*pair)}
        for module, connector in sorted(self._connected - connected):
            self._opened(module, connector, estop=estop)
        self._connected = connected
        self._note_shared(connected)
        offers: dict[str, Load] = {}
        self._feeds = {}
        for connector, load in loads.items():
            feeding = [self._bank.module(module) for module, to in sorted(connected)
                       if to == connector and module not in self._feeds]
            if load is None or not feeding:
                continue
            self._feeds |= dict.fromkeys((module.name for module in feeding), connector)
            offers |= _split(load, feeding)
        for module in self._bank.modules:
            module.apply_load(offers.get(module.name))

    def current_a(self, connector_id: int) -> float:
        """What the modules feeding the connector's EV deliver now, A."""
        feeding = [name for name, to in self._feeds.items() if to == connector_id]
        return sum(self._bank.module(name).current_a for name in feeding)

    def _note_shared(self, connected: set[tuple[str, int]]) -> None:
        """A module on two connectors joins their outputs (smartw must never do it); the model
        gives it to the first of them, in station.toml's order, whose EV draws."""
        modules = [module for module, _ in connected]
        shared = {module for module in modules if modules.count(module) > 1}
        for module in sorted(shared - self._shared):
            connectors = sorted(to for name, to in connected if name == module)
            log.warning("%s is linked to connectors %s at once", module, connectors)
        self._shared = shared

    def _opened(self, module: str, connector: int, *, estop: bool) -> None:
        current_a = self._bank.module(module).current_a if self._feeds.get(module) == connector else 0.0
        if current_a <= UNDER_LOAD_A:
            return
        if estop:
            log.info("link %s opened by the e-stop under %.0f A", link_key(module, connector), current_a)
            return
        self.links_opened_under_load += 1
        log.warning("link %s opened under %.0f A", link_key(module, connector), current_a)


def _split(load: EvLoad, modules: list[SimulatedPowerModule]) -> dict[str, Load]:
    """The EV's wanted current shared in proportion to what each module can give now."""
    available = {module.name: module.available_a(load.battery_voltage_v) for module in modules}
    total = sum(available.values())
    return {name: Load(load.battery_voltage_v, load.wanted_a * can / total if total else 0.0)
            for name, can in available.items()}
