"""An in-memory physical charging station for the whole-station property tests
(tests/smartw/test_station_invariants.py).

smartw's power control (workers/smartw/power_control.py) is judged against physics, not against
a record of its own commands: contactors whose contacts follow their coils (at once, or one
physics step later), DC power modules whose current ramps at a finite rate toward the least of
their setpoint and what the EV takes through them, EVs drawing through whatever modules are
linked to their connector, AC EVs (and DC controllers with their own converter) drawing
min(limit, demand) at a finite rate. Every contact that moves is recorded with the current
flowing through it at that moment (and, for a link closing, the two voltages it joins), so a
test can tell a contactor switched under load (safety invariant 3) from one switched at zero
current; every controller output command is recorded for the limits (invariant 1).

`StationModel` is the StationHardware smartw talks to (IO module and charge controllers);
`ModuleBank` is the power modules' driver (a power_control.ModuleDriver). A restarted smartw
gets a new bank: its setpoints are forgotten and its first re-send switches every module off,
while the modules, contactors and EVs keep their state.

Kept small on purpose: one voltage per DC bus, the EV's battery directly behind its connector
at a constant voltage, no cable resistance, a module current split by headroom, a module that
stops hearing its driver switches itself off after its silence timeout (then ramps to zero).
"""

from __future__ import annotations

from dataclasses import dataclass

from bus.messages import MeterReading
from workers.common.power_config import link_key
from workers.common.station_config import StationConfig
from workers.drivers.controller import ControllerSnapshot, EvState
from workers.drivers.controllers.interface import EvDemand, OutputMeasurement, SessionPhase
from workers.drivers.imd import ImdSnapshot
from workers.drivers.infypower import ModuleReading, Setpoint, SetpointError
from workers.drivers.infypower_frames import StatusFlag
from workers.drivers.io_module import IoSnapshot
from workers.smartw.hardware import OUTPUT_LEASE_S

MODULE_RAMP_A_PER_S = 30.0  # "tens of A/s" (reference/hardware.md §3.5), as the simulated modules
MODULE_RAMP_V_PER_S = 300.0
AC_EV_RAMP_A_PER_S = 50.0  # an AC EV follows its limit this fast (even 96 A to zero within 2 s)
DC_CONVERTER_RAMP_A_PER_S = 250.0  # a DC controller with its own converter, as the simulated ones ...
DC_CONVERTER_MAX_A = 500.0  # ... and their rated current: a stop ramps down within 2 s
PHASE_VOLTAGE_V = 230.0
DC_PHASES = 3

ContactorKey = int | str  # a connector's id, or a module link's link_key ("pm3>1")


@dataclass
class Contactor:
    coil: bool = False
    contact: bool = False
    emergency: bool = False  # the coil's last move was an emergency open


@dataclass(frozen=True)
class Switching:
    """A contact that moved, with what flowed through it just before."""

    at: float
    key: ContactorKey
    closed: bool
    current_a: float
    emergency: bool
    module_v: float | None = None  # a link closing: the module's output voltage ...
    bus_v: float | None = None  # ... and the DC bus it joins


@dataclass(frozen=True)
class OutputCommand:
    at: float
    connector_id: int
    enabled: bool
    power_limit_w: float
    offered_sum_w: float  # every controller's offer together, once this command is taken


@dataclass
class Ev:
    battery_v: float  # DC: held on the connector while its contactor is closed
    target_v: float  # DC: the voltage the EV asks for (>= battery)
    demand_w: float  # 0: the EV takes nothing (state B)


@dataclass
class Controller:
    enabled: bool = False
    limit_w: float = 0.0
    lease_left_s: float = 0.0

    @property
    def offered_w(self) -> float:
        return self.limit_w if self.enabled else 0.0


@dataclass
class PowerModule:
    name: str
    address: int
    rated_w: float
    max_current_a: float
    min_voltage_v: float
    max_voltage_v: float
    silence_timeout_s: float
    on: bool = False
    set_voltage_v: float = 0.0
    set_current_a: float = 0.0
    voltage_v: float = 0.0
    current_a: float = 0.0
    online: bool = True
    faulted: bool = False  # a protection trip: output cut at once, reported in its status
    silent_s: float = 0.0
    timed_out: bool = False

    @property
    def delivering(self) -> bool:
        return self.on and not self.faulted

    @property
    def output_target_v(self) -> float:
        if not self.delivering:
            return 0.0
        return min(max(self.set_voltage_v, self.min_voltage_v), self.max_voltage_v)

    def hear(self, setpoint: Setpoint) -> None:
        self.on, self.silent_s, self.timed_out = setpoint.on, 0.0, False
        self.set_voltage_v, self.set_current_a = setpoint.voltage_mv / 1000, setpoint.current_ma / 1000

    def headroom_a(self, bus_v: float) -> float:
        """What it can push into a bus held at `bus_v` (its output diode blocks below it)."""
        if not self.delivering or self.output_target_v < bus_v:
            return 0.0
        return min(self.set_current_a, self.max_current_a, self.rated_w / max(bus_v, 1.0))

    def reading(self) -> ModuleReading | None:
        if not self.online:
            return None
        status = StatusFlag(0) if self.delivering else StatusFlag.DC_SIDE_OFF
        if self.faulted:
            status |= StatusFlag.FAULT | StatusFlag.PROTECTION
        if self.timed_out:
            status |= StatusFlag.COMM_INTERRUPT
        return ModuleReading(self.name, self.address, self.voltage_v, self.current_a, status)


def modules_of(config: StationConfig) -> dict[str, PowerModule]:
    pm = config.power_modules
    if pm is None:
        return {}
    return {name: PowerModule(name, address, pm.rated_kw * 1000, pm.max_current_a, pm.min_voltage_v,
                              pm.max_voltage_v, pm.silence_timeout_s)
            for address, name in zip(pm.module_addresses(), pm.module_names(), strict=True)}


def approach(value: float, target: float, step: float) -> float:
    if abs(target - value) <= step:
        return target
    return value + step if target > value else value - step


class StationModel:
    """The station's physics, seen by smartw as its StationHardware."""

    def __init__(self, config: StationConfig, *, contact_delay: bool = False) -> None:
        self.config = config
        self.contact_delay = contact_delay  # contacts follow their coils one step later
        self.now = 0.0
        self.connector_ids = [c.id for c in config.connectors]
        self.contactors = {cid: Contactor() for cid in self.connector_ids}
        self.modules = modules_of(config)
        self.matrix = config.module_matrix()
        self.link_ends = {link_key(name, cid): (name, cid) for cid, names in self.matrix.items()
                          for name in names}
        self.links = {key: Contactor() for key in self.link_ends}
        self._bus_links = {cid: [(self.modules[name], self.links[link_key(name, cid)]) for name in names]
                           for cid, names in self.matrix.items()}
        self.links_of = {name: [self.links[key] for key, (module, _) in self.link_ends.items()
                                if module == name] for name in self.modules}
        self.controllers = {cid: Controller() for cid in self.connector_ids}
        self.evs: dict[int, Ev | None] = dict.fromkeys(self.connector_ids)
        self.own_current_a = dict.fromkeys(self.connector_ids, 0.0)  # AC: per phase
        self.estop = False
        self.other_load_w = 0.0
        self.bank: ModuleBank | None = None  # the driver running now; None while smartw is down
        self.switchings: list[Switching] = []
        self.commands: list[OutputCommand] = []
        self.peak_module_current_a = 0.0  # for the tests' coverage statistics
        # What the driver's last poll read: taken before the latest step of physics, so smartw
        # decides on readings one step old, as on a real CAN bus (None: no poll yet).
        self.polled: dict[str, ModuleReading | None] | None = None

    # ---- what the scenario does to the station -----------------------------------------

    def start_driver(self) -> ModuleBank:
        """A new smartw's driver: every setpoint off, sent to every module that hears."""
        self.bank = ModuleBank(self)
        self.bank.resend()
        return self.bank

    def stop_driver(self) -> None:
        self.bank = None

    def press_estop(self) -> None:
        """The e-stop is wired into the coil circuit: every contact drops at once."""
        self.estop = True
        for key, contactor in self._all_contactors():
            self._move(key, contactor, False, emergency=True)

    def is_dc(self, connector_id: int) -> bool:
        return self.config.connector(connector_id).is_dc

    def module_fed(self, connector_id: int) -> bool:
        return bool(self.matrix.get(connector_id))

    # ---- time ----------------------------------------------------------------------------

    def advance(self, dt_s: float) -> None:
        self.polled = {name: module.reading() for name, module in self.modules.items()}
        self.now += dt_s
        if self.contact_delay:
            for key, contactor in self._all_contactors():
                self._move(key, contactor, contactor.coil and not self.estop, emergency=contactor.emergency)
        self._run_timers(dt_s)
        for cid in self.connector_ids:
            if self.module_fed(cid):
                self._flow_through_modules(cid, dt_s)
            else:
                self._flow_own(cid, dt_s)
        self._settle_open_buses(dt_s)

    def _run_timers(self, dt_s: float) -> None:
        for controller in self.controllers.values():
            controller.lease_left_s -= dt_s
            if controller.enabled and controller.lease_left_s <= 1e-9:
                controller.enabled, controller.limit_w = False, 0.0
        for module in self.modules.values():
            if self.bank is not None and module.online:
                module.hear(self.bank.setpoint(module.address))  # the driver's periodic re-send
            else:
                module.silent_s += dt_s
                if module.on and module.silent_s >= module.silence_timeout_s:
                    module.on, module.timed_out = False, True
            if module.faulted:
                module.current_a = 0.0

    def _flow_through_modules(self, cid: int, dt_s: float) -> None:
        linked = self.linked_modules(cid)
        load_v = self._load_voltage(cid)
        if load_v is None:
            for module in linked:
                module.current_a = 0.0
            return
        wanted_a = self._ev_takes_w(cid) / load_v
        headroom = [module.headroom_a(load_v) for module in linked]
        total = sum(headroom)
        share = min(1.0, wanted_a / total) if total > 0 else 0.0
        for module, can in zip(linked, headroom, strict=True):
            module.current_a = approach(module.current_a, can * share, MODULE_RAMP_A_PER_S * dt_s)
            module.voltage_v = load_v
            self.peak_module_current_a = max(self.peak_module_current_a, module.current_a)

    def _flow_own(self, cid: int, dt_s: float) -> None:
        if not self.contactors[cid].contact:
            self.own_current_a[cid] = 0.0
            return
        target = self._ev_takes_w(cid) / self._volts_per_amp(cid)
        if self.is_dc(cid):
            target = min(target, DC_CONVERTER_MAX_A)
        rate = DC_CONVERTER_RAMP_A_PER_S if self.is_dc(cid) else AC_EV_RAMP_A_PER_S
        self.own_current_a[cid] = approach(self.own_current_a[cid], target, rate * dt_s)

    def _settle_open_buses(self, dt_s: float) -> None:
        """Modules not on a loaded bus move toward their own output voltage; modules sharing an
        open bus sit at its highest one."""
        loaded = {m.name for cid in self.connector_ids if self._load_voltage(cid) is not None
                  for m in self.linked_modules(cid)}
        for module in self.modules.values():
            if module.name not in loaded:
                module.voltage_v = approach(module.voltage_v, module.output_target_v,
                                            MODULE_RAMP_V_PER_S * dt_s)
        for cid in self.matrix:
            linked = self.linked_modules(cid)
            if linked and self._load_voltage(cid) is None:
                bus_v = max(module.voltage_v for module in linked)
                for module in linked:
                    module.voltage_v = bus_v

    # ---- what flows where --------------------------------------------------------------

    def linked_modules(self, cid: int) -> list[PowerModule]:
        return [module for module, link in self._bus_links.get(cid, ()) if link.contact]

    def _load_voltage(self, cid: int) -> float | None:
        """The battery's voltage on a DC connector's bus while its contactor is closed."""
        ev = self.evs[cid]
        return ev.battery_v if ev is not None and self.contactors[cid].contact else None

    def bus_voltage(self, cid: int) -> float:
        load_v = self._load_voltage(cid)
        if load_v is not None:
            return load_v
        return max((module.voltage_v for module in self.linked_modules(cid)), default=0.0)

    def _ev_takes_w(self, cid: int) -> float:
        ev = self.evs[cid]
        if ev is None or not self.contactors[cid].contact:
            return 0.0
        return min(ev.demand_w, self.controllers[cid].offered_w)

    def _volts_per_amp(self, cid: int) -> float:
        """Watts per ampere: the battery voltage (DC) or the phases' voltage (AC, per phase)."""
        config = self.config.connector(cid)
        if config.is_dc:
            ev = self.evs[cid]
            return ev.battery_v if ev is not None else 1.0
        return config.ac_phases * PHASE_VOLTAGE_V

    def connector_current_a(self, cid: int) -> float:
        if not self.contactors[cid].contact:
            return 0.0
        if self.module_fed(cid):
            return sum(module.current_a for module in self.linked_modules(cid))
        return self.own_current_a[cid]

    def connector_power_w(self, cid: int) -> float:
        if self.module_fed(cid):
            return self.bus_voltage(cid) * self.connector_current_a(cid)
        return self._volts_per_amp(cid) * self.connector_current_a(cid)

    def _current_through(self, key: ContactorKey) -> float:
        if isinstance(key, int):
            return self.connector_current_a(key)
        name, _ = self.link_ends[key]
        return self.modules[name].current_a if self.links[key].contact else 0.0

    # ---- switching ---------------------------------------------------------------------

    def _all_contactors(self) -> list[tuple[ContactorKey, Contactor]]:
        return [*self.contactors.items(), *self.links.items()]

    def _set_coil(self, key: ContactorKey, contactor: Contactor, closed: bool, *,
                  emergency: bool = False) -> None:
        contactor.coil, contactor.emergency = closed, emergency and not closed
        if not self.contact_delay:
            self._move(key, contactor, closed and not self.estop, emergency=contactor.emergency)

    def _move(self, key: ContactorKey, contactor: Contactor, closed: bool, *, emergency: bool) -> None:
        if contactor.contact == closed:
            return
        module_v = bus_v = None
        if closed and isinstance(key, str):
            name, cid = self.link_ends[key]
            module_v, bus_v = self.modules[name].voltage_v, self.bus_voltage(cid)
        self.switchings.append(Switching(self.now, key, closed, self._current_through(key), emergency,
                                         module_v, bus_v))
        if not closed:
            self._cut(key)
        contactor.contact = closed

    def _cut(self, key: ContactorKey) -> None:
        """An opening contact stops the current through it."""
        if isinstance(key, str):
            self.modules[self.link_ends[key][0]].current_a = 0.0
            return
        self.own_current_a[key] = 0.0
        for module in self.linked_modules(key):
            module.current_a = 0.0

    # ---- StationHardware ---------------------------------------------------------------

    async def read_io(self) -> IoSnapshot:
        return self.io_snapshot()

    def io_snapshot(self) -> IoSnapshot:
        contactors = self._all_contactors()
        return IoSnapshot(estop_pressed=self.estop,
                          contactors_closed={key: c.coil for key, c in contactors},
                          contactor_feedback={key: c.contact for key, c in contactors})

    async def poll_imd(self) -> ImdSnapshot | None:
        return None

    async def set_contactor(self, connector_id: int, closed: bool) -> None:
        self._set_coil(connector_id, self.contactors[connector_id], closed)

    async def set_link(self, module: str, connector_id: int, closed: bool) -> None:
        key = link_key(module, connector_id)
        if key not in self.links:
            raise AssertionError(f"smartw switched link {key}, which station.toml does not wire")
        self._set_coil(key, self.links[key], closed)

    async def poll_controller(self, connector_id: int) -> ControllerSnapshot:
        return self.controller_snapshot(connector_id)

    def controller_snapshot(self, cid: int) -> ControllerSnapshot:
        ev, config = self.evs[cid], self.config.connector(cid)
        if ev is None:
            return ControllerSnapshot(EvState.A, None, None, 0.0, 0)
        present = OutputMeasurement(self.bus_voltage(cid) if config.is_dc else PHASE_VOLTAGE_V,
                                    self.connector_current_a(cid))
        charging = ev.demand_w > 0
        state, phase = (EvState.C, SessionPhase.CHARGING) if charging else (EvState.B, SessionPhase.PLUGGED)
        demand = EvDemand(target_voltage_v=ev.target_v) if config.is_dc else EvDemand()
        return ControllerSnapshot(state, None, None, ev.demand_w, 0, phase=phase, standard=config.standard,
                                  demand=demand, present=present)

    async def set_output(self, connector_id: int, enabled: bool, power_limit_w: float) -> None:
        controller = self.controllers[connector_id]
        controller.enabled, controller.limit_w = enabled, power_limit_w if enabled else 0.0
        controller.lease_left_s = OUTPUT_LEASE_S if enabled else 0.0
        self.commands.append(OutputCommand(self.now, connector_id, enabled, power_limit_w, self.offered_w()))

    async def open_all(self, *, emergency: bool) -> None:
        """As ModbusStationHardware: contactors first in an emergency, else the controllers
        first; either way nothing waits for the current to fall."""
        if not emergency:
            await self._disable_controllers()
        for key, contactor in self._all_contactors():
            self._set_coil(key, contactor, False, emergency=emergency)
        if emergency:
            await self._disable_controllers()

    async def _disable_controllers(self) -> None:
        for cid in self.connector_ids:
            await self.set_output(cid, False, 0.0)

    async def close(self) -> None:
        return None

    # ---- what the meters show --------------------------------------------------------

    def offered_w(self) -> float:
        return sum(controller.offered_w for controller in self.controllers.values())

    def meter(self, cid: int) -> MeterReading:
        return MeterReading(meter=f"connector{cid}", energy_wh=0.0, power_w=self.connector_power_w(cid))

    def station_meter(self) -> MeterReading:
        power = sum(self.connector_power_w(cid) for cid in self.connector_ids) + self.other_load_w
        return MeterReading(meter="station", energy_wh=0.0, power_w=power)


class ModuleBank:
    """The power modules' driver as smartw holds it (InfypowerModules' behaviour): setpoints
    are cached and go to every module that hears; an offline module gets its setpoint again
    when it comes back (the driver's periodic re-send, StationModel.advance)."""

    def __init__(self, model: StationModel) -> None:
        self.model = model
        self.names = {module.address: module.name for module in model.modules.values()}
        self._setpoints = {address: Setpoint() for address in self.names}
        self._by_address = {module.address: module for module in model.modules.values()}

    def reading(self, address: int) -> ModuleReading | None:
        """The last poll (one step old); offline now means no reading, as the driver drops it."""
        module = self._by_address[address]
        polled = self.model.polled
        if polled is None or not module.online:
            return module.reading()
        return polled[module.name]

    def is_available(self, address: int) -> bool:
        return self._by_address[address].online

    def setpoint(self, address: int) -> Setpoint:
        return self._setpoints[address]

    async def set_output(self, address: int, voltage_v: float, current_a: float) -> None:
        module = self._by_address[address]
        for what, value, top in (("voltage", voltage_v, module.max_voltage_v),
                                 ("current", current_a, module.max_current_a)):
            if not 0 <= value <= top:  # also refuses NaN
                raise SetpointError(f"{module.name}: {what} setpoint {value!r} is outside 0..{top}")
        old = self._setpoints[address]
        self._setpoints[address] = Setpoint(old.on, round(voltage_v * 1000), round(current_a * 1000))
        self._send(address)

    async def set_on(self, address: int, on: bool) -> None:
        old = self._setpoints[address]
        self._setpoints[address] = Setpoint(on, old.voltage_mv, old.current_ma)
        self._send(address)

    async def switch_all_off(self) -> None:
        self._setpoints = dict.fromkeys(self._setpoints, Setpoint())
        self.resend()

    def resend(self) -> None:
        for address in self.names:
            self._send(address)

    def _send(self, address: int) -> None:
        module = self._by_address[address]
        if module.online and self.model.bank is self:
            module.hear(self._setpoints[address])
