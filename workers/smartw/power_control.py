"""Carrying out the power allocation every control cycle: the engine's inputs from what smartw
knows now, the engine (workers/smartw/power_allocation.py), and its outputs to the hardware.

Inputs: each charging connector's EV demand and target voltage (its controller), its meter,
its rating and limits (OCPP and operator, workers/smartw/limits.py), the station meter, and each
power module's availability, reading and link (the IO module's read-back and feedback of the
matrix contactors). Outputs, decreases first so the sum stays within the limits while the
writes go out (safety invariant 1): each controller's power limit, then each module's step
toward its connector (workers/smartw/module_switching.py: no link switched under load, safety
invariant 3), then the links.

One clock (`time.time()`, epoch seconds) serves the allocation's `now`, limit expiry, session
order and module dwell, so limits published by other services compare directly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from bus.messages import MeterReading
from workers.common.power_config import link_key
from workers.common.station_config import StationConfig
from workers.drivers.errors import DeviceError
from workers.drivers.infypower import ModuleReading, Setpoint, SetpointError
from workers.drivers.io_module import ContactorFault, IoSnapshot
from workers.smartw.connector import ConnectorRuntime
from workers.smartw.hardware import HardwareError, StationHardware
from workers.smartw.limits import StationLimits
from workers.smartw.module_switching import (
    SETPOINT_DRIFT_V,
    ModuleState,
    ModuleStep,
    ModuleTarget,
    next_step,
)
from workers.smartw.power_allocation import (
    AllocationInput,
    AllocationResult,
    ConnectorInput,
    ModuleInput,
    StationInput,
    allocate_power,
    matrix_from_config,
    settings_from_config,
)

log = logging.getLogger(__name__)

PHASE_VOLTAGE_V = 230.0
OFF_RAMP_A_PER_S = 10.0  # the slowest a module's output falls once it has switched off (tens of A/s)


class ModuleDriver(Protocol):
    """What smartw needs of the power modules' driver (InfypowerModules has it)."""

    names: Mapping[int, str]

    def reading(self, address: int) -> ModuleReading | None: ...

    def is_available(self, address: int) -> bool: ...

    def setpoint(self, address: int) -> Setpoint: ...

    async def set_output(self, address: int, voltage_v: float, current_a: float) -> None: ...

    async def set_on(self, address: int, on: bool) -> None: ...

    async def switch_all_off(self) -> None: ...


@dataclass
class _Module:
    address: int
    name: str
    commanded: frozenset[int] = frozenset()  # links we last commanded closed
    connector_id: int | None = None  # the one connector it is on, as last seen
    since: float = -math.inf  # when that changed
    last_heard: float = 0.0  # set from the clock when PowerControl starts
    zero_since: float | None = None  # since when its held current setpoint is 0 A (None: it is not)
    held: tuple[bool, float] | None = None  # its on/off and voltage setpoint (V) as held ...
    held_since: float = -math.inf  # ... and since when (within SETPOINT_DRIFT_V)


class PowerControl:
    def __init__(self, config: StationConfig, hardware: StationHardware, modules: ModuleDriver | None,
                 *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.hardware = hardware
        self.driver = modules
        self.clock = clock
        self.settings = settings_from_config(config)
        self.matrix = matrix_from_config(config) if modules is not None else {}
        pm = config.power_modules
        self.rated_w = pm.rated_kw * 1000 if pm else 0.0
        self.max_current_a = pm.max_current_a if pm else None
        # A silent module is off and its current gone after its own timeout plus its ramp down.
        self.off_after_s = pm.silence_timeout_s + pm.max_current_a / OFF_RAMP_A_PER_S if pm else math.inf
        # A zero setpoint held this long: the module's latest reading was polled after it went out.
        self.settle_s = 2 * pm.poll_s + pm.answer_timeout_s if pm else 0.0
        started = clock()
        self.modules = {name: _Module(address, name, last_heard=started)
                        for address, name in (modules.names.items() if modules else ())}
        self.last: AllocationResult | None = None
        self._seen_links: dict[str, frozenset[int]] = {}

    # ---- the cycle -------------------------------------------------------------------

    async def apply(self, connectors: Mapping[int, ConnectorRuntime], io: IoSnapshot | None,
                    station_meter: MeterReading | None, limits: StationLimits) -> AllocationResult:
        now = self.clock()
        self._observe_links(io, now)
        charging = {cid: c for cid, c in connectors.items() if c.drawing}
        request = AllocationInput(
            station=limits.apply_to_station(self._station_input(station_meter)),
            connectors=tuple(limits.apply_to_connector(self._connector_input(c)) for c in charging.values()),
            modules=tuple(self._module_input(m, io) for m in self.modules.values()),
            settings=self.settings, now=now)
        result = allocate_power(request)
        self.last = result
        await self._set_controllers(charging, result)
        await self._move_modules(connectors, result)
        return result

    def _station_input(self, meter: MeterReading | None) -> StationInput:
        station = self.config.station
        return StationInput(limit_w=station.max_power_kw * 1000, matrix=self.matrix,
                            limit_a=station.max_current_a, phase_voltage_v=PHASE_VOLTAGE_V,
                            meter_w=meter.power_w if meter is not None else None)

    def _connector_input(self, connector: ConnectorRuntime) -> ConnectorInput:
        config, controller, session = connector.config, connector.controller, connector.session
        assert session is not None
        demand = 0.0  # the EV takes none, or the CSMS refused its idTag and the allowance is used
        if controller is not None and connector.ev_requesting and not connector.power_withheld:
            demand = controller.ev_max_power_w
        meter = connector.fresh_meter()
        return ConnectorInput(
            connector_id=connector.id, standard=config.standard, limit_w=config.max_power_kw * 1000,
            demand_w=demand, session_started_at=session.started_at.timestamp(),
            measured_w=meter.power_w if meter is not None else None, previous_w=self._given_w(connector),
            limit_a=config.max_current_a, phases=config.ac_phases, phase_voltage_v=PHASE_VOLTAGE_V,
            target_voltage_v=controller.demand.target_voltage_v if controller is not None else None,
            module_fed=connector.id in self.matrix)

    def _given_w(self, connector: ConnectorRuntime) -> float:
        """What the connector could draw of its last allocation: for a module-fed one, no more
        than the modules already linked to it give. Modules still joining do not count, so the
        measured-consumption rule does not take them back before they have delivered."""
        if connector.id not in self.matrix:
            return connector.allocated_w
        assert self.driver is not None
        linked = [m for m in self.modules.values() if m.connector_id == connector.id
                  and self.driver.reading(m.address) is not None]
        return min(connector.allocated_w, len(linked) * self.rated_w)

    def _module_input(self, module: _Module, io: IoSnapshot | None) -> ModuleInput:
        assert self.driver is not None
        reading = self.driver.reading(module.address)
        welded = io is not None and any(
            io.contactor_faults.get(self._link_key(module.name, cid)) is ContactorFault.WELDED
            for cid in self.matrix)
        available = (self.driver.is_available(module.address) and reading is not None
                     and reading.fault is None and not welded)
        return ModuleInput(module.name, self.rated_w, available, module.connector_id, module.since,
                           self.max_current_a)

    # ---- outputs ---------------------------------------------------------------------

    async def _set_controllers(self, charging: Mapping[int, ConnectorRuntime],
                               result: AllocationResult) -> None:
        shares = {c.connector_id: c for c in result.connectors}
        for connector in sorted(charging.values(), key=lambda c: shares[c.id].power_w - c.allocated_w):
            share = shares[connector.id]
            if not connector.drawing:
                continue  # a stop began (or the EV left) while the cycle wrote to others: never re-enable it
            try:
                await self.hardware.set_output(connector.id, True, share.power_w)
            except HardwareError as error:
                log.error("connector %s: cannot set power limit: %s", connector.id, error)
                continue
            connector.allocated_w = share.power_w

    async def _move_modules(self, connectors: Mapping[int, ConnectorRuntime],
                            result: AllocationResult) -> None:
        if self.driver is None:
            return
        targets = self._module_targets(result)
        steps = [next_step(self._state(module), targets.get(module.name, ModuleTarget(None)),
                           self._bus_voltage(connectors, module.name, targets))
                 for module in self.modules.values()]
        # Currents down and links open first, then voltages and currents up, then links closed.
        for step in sorted(steps, key=lambda s: s.current_a - self._held_current_a(s.name)):
            await self._command_module(step)
        for step in steps:
            await self._switch_links(step)

    def _module_targets(self, result: AllocationResult) -> dict[str, ModuleTarget]:
        """Each group's current goes to the modules already on its connector: one still joining
        gets 0 A (it takes its share once linked, so the others do not fall short meanwhile),
        and what a leaving module still carries comes off the others' share (their setpoints
        never add up to more than the group's current while it ramps down)."""
        targets = {}
        for group in result.groups:
            cid = group.connector_id
            staying = [name for name in group.modules if self.modules[name].connector_id == cid]
            leaving_a = sum(self._carried_a(m) for m in self.modules.values()
                            if m.connector_id == cid and m.name not in group.modules)
            share_a = max(group.current_a - leaving_a, 0.0) / len(staying) if staying else 0.0
            for name in group.modules:
                targets[name] = ModuleTarget(cid, group.voltage_v, share_a if name in staying else 0.0)
        return targets

    def _carried_a(self, module: _Module) -> float:
        """What a module carries now; without a reading, the most it could."""
        assert self.driver is not None
        reading = self.driver.reading(module.address)
        if reading is not None:
            return max(reading.current_a, 0.0)
        return self.max_current_a if self.max_current_a is not None else math.inf

    def _state(self, module: _Module) -> ModuleState:
        assert self.driver is not None
        reading = self.driver.reading(module.address)
        now = self.clock()
        held = self.driver.setpoint(module.address)
        if held.current_ma != 0 and held.on:
            module.zero_since = None
        elif module.zero_since is None:
            module.zero_since = now
        held_v = held.voltage_mv / 1000
        before = module.held
        if before is None or before[0] != held.on or abs(before[1] - held_v) > SETPOINT_DRIFT_V:
            module.held, module.held_since = (held.on, held_v), now
        zeroed_for_s = now - module.zero_since if module.zero_since is not None else 0.0
        return ModuleState(module.name, module.commanded | self._seen_links.get(module.name, frozenset()),
                           reading.voltage_v if reading else None, reading.current_a if reading else None,
                           now - module.last_heard, self.off_after_s, zeroed_for_s, held.on, held_v,
                           now - module.held_since, self.settle_s)

    def _bus_voltage(self, connectors: Mapping[int, ConnectorRuntime], name: str,
                     targets: Mapping[str, ModuleTarget]) -> float:
        """The voltage on the target connector's DC bus: what its controller measures while its
        contactor is closed, or what the modules already on it measure."""
        target = targets.get(name)
        if target is None or target.connector_id is None:
            return 0.0
        cid = target.connector_id
        connector = connectors.get(cid)
        if connector is not None and connector.session is not None and connector.controller is not None:
            measured = connector.controller.present.voltage_v
            if measured:  # the controller measures the bus itself: the modules' readings may lag it
                return measured
        volts = [0.0]
        assert self.driver is not None
        for other in self.modules.values():
            reading = self.driver.reading(other.address)
            if other.name != name and other.connector_id == cid and reading is not None:
                volts.append(reading.voltage_v)
        return max(volts)

    async def _command_module(self, step: ModuleStep) -> None:
        assert self.driver is not None
        address = self.modules[step.name].address
        if self.max_current_a is not None:
            step = replace(step, current_a=min(step.current_a, self.max_current_a))
        wanted = (round(step.voltage_v * 1000), round(step.current_a * 1000))
        try:
            held = self.driver.setpoint(address)  # the driver's own (the guard may have reset it)
            if wanted != (held.voltage_mv, held.current_ma):
                await self.driver.set_output(address, step.voltage_v, step.current_a)
            if step.on != held.on:
                await self.driver.set_on(address, step.on)
        except (DeviceError, SetpointError) as error:
            log.error("%s: cannot command %.0f V %.1f A: %s", step.name, step.voltage_v, step.current_a,
                      error)

    def _held_current_a(self, name: str) -> float:
        assert self.driver is not None
        return self.driver.setpoint(self.modules[name].address).current_ma / 1000

    async def _switch_links(self, step: ModuleStep) -> None:
        module = self.modules[step.name]
        for cid in sorted(module.commanded - step.links):
            await self._set_link(module, cid, False)
        for cid in sorted(step.links - module.commanded):
            await self._set_link(module, cid, True)

    async def _set_link(self, module: _Module, connector_id: int, closed: bool) -> None:
        try:
            await self.hardware.set_link(module.name, connector_id, closed)
        except HardwareError as error:
            log.error("link %s to connector %s: cannot %s: %s", module.name, connector_id,
                      "close" if closed else "open", error)
            if not closed:
                return  # it may still be closed: keep counting it as closed
        module.commanded = module.commanded | {connector_id} if closed else module.commanded - {connector_id}

    # ---- what the IO module shows ----------------------------------------------------

    def _observe_links(self, io: IoSnapshot | None, now: float) -> None:
        """Each module's links as the IO module shows them (coil read-back or feedback contact
        closed), and the time its one connector last changed (the dwell's clock)."""
        seen: dict[str, frozenset[int]] = {}
        for module in self.modules.values():
            links = frozenset(cid for cid in self.matrix
                              if io is not None and self._link_closed(io, module.name, cid))
            seen[module.name] = links
            assert self.driver is not None
            if self.driver.reading(module.address) is not None:
                module.last_heard = now
            both = links | module.commanded
            connector_id = next(iter(both)) if len(both) == 1 else None
            if connector_id != module.connector_id:
                module.connector_id, module.since = connector_id, now
        self._seen_links = seen

    def _link_closed(self, io: IoSnapshot, module: str, connector_id: int) -> bool:
        key = self._link_key(module, connector_id)
        return bool(io.contactors_closed.get(key) or io.contactor_feedback.get(key))

    @staticmethod
    def _link_key(module: str, connector_id: int) -> str:
        return link_key(module, connector_id)

    def forget_links(self) -> None:
        """The guard opened every link (a station fault): what was commanded no longer holds,
        so a link is closed again only through a new join."""
        for module in self.modules.values():
            module.commanded = frozenset()


