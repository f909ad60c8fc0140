"""What the whole-station property tests (test_station_invariants.py) drive and check: random
stations and event sequences decoded from bytes, smartw's side around the physical model
(tests/smartw/station_model.py), and the checks of safety invariants 1 and 3.

smartw's side is played as its code plays it, through the same objects: ConnectorRuntime
sessions started and stopped the way SessionControl does (sessions.py), the guard's e-stop
(open_all(emergency=True), every module off, sessions ended, no cycles while it stands), a
restart as service.run starts, and every cycle PowerControl.apply over what the controllers,
meters and the IO module show. The invariants are checked on the model's record: the output
commands and every contact that moved.

A scenario is byte strings (as in test_power_allocation.py): few draws per scenario keep the
CI profile inside its time budget, hypothesis still shrinks them (fewer events, smaller bytes),
and zero bytes decode to the station where modules move (two CCS connectors sharing four
modules, no dwell) and to plugging in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from bus.enums import Standard
from tests.smartw.station_model import DC_PHASES, PHASE_VOLTAGE_V, Ev, ModuleBank, StationModel, Switching
from tests.smartw.test_power_allocation import Decoder
from workers.common.power_config import link_key
from workers.common.station_config import StationConfig
from workers.smartw.connector import ActiveSession, ConnectorRuntime
from workers.smartw.limits import NO_LIMITS, ScopeLimits, StationLimits
from workers.smartw.module_switching import DEAD_BUS_V, VOLTAGE_MATCH_SHARE, VOLTAGE_MATCH_V, ZERO_CURRENT_A
from workers.smartw.power_allocation import ExternalLimit
from workers.smartw.power_control import PowerControl
from workers.smartw.sessions import RAMP_DOWN_TIMEOUT_S, ZERO_POWER_W
from workers.smartw.unloaded_open import open_unloaded

T = TypeVar("T")
TICK_S = 0.2  # smartw's control cycle (io_module poll_s)
SLOW_TICK_S = 1.0  # time passing: cycles a second apart, as when devices are slow to answer
EPOCH = 1_767_225_600.0  # 2026-01-01: the clock PowerControl, sessions and limit expiry share
TOLERANCE_W = 1.0
SETPOINT_STEP = 0.0005  # the driver's setpoints are whole mV and mA: each is off by half of one at most
STANDARDS = (Standard.CCS, Standard.TYPE2, Standard.CHADEMO, Standard.GBT)
DC_STANDARDS = (Standard.CCS, Standard.CHADEMO, Standard.GBT)


def run_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (everything it awaits is the in-memory model)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError("the coroutine waited on something; the station model never makes it wait")


# ---- random stations ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StationSpec:
    config: StationConfig
    contact_delay: bool  # contacts follow their coils one physics step late
    has_meter: bool  # smartw gets the station meter's reading

    def __repr__(self) -> str:
        c, pm = self.config, self.config.power_modules
        connectors = [(x.id, x.standard.value, x.max_power_kw, x.phases, x.max_current_a)
                      for x in c.connectors]
        modules = (pm.rated_kw, pm.max_current_a, c.module_matrix()) if pm else None
        return (f"StationSpec(station={c.station.max_power_kw} kW/{c.station.max_current_a} A, "
                f"connectors={connectors}, modules={modules}, allocation={c.allocation.model_dump()}, "
                f"contact_delay={self.contact_delay}, has_meter={self.has_meter})")


def station_config(connectors: list[dict[str, Any]], **sections: Any) -> StationConfig:
    """A station.toml with these connectors (connector_entry) and sections; one Modbus bus."""
    return StationConfig.model_validate({
        "buses": {"b": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": 502}},
        "io_module": {"bus": "b", "device_id": 10, "inputs": {"estop": 0}},
        "rfid": {"port": "/dev/null"}, "connectors": connectors, **sections})


def connector_entry(cid: int, standard: Standard, **fields: Any) -> dict[str, Any]:
    """Connector `cid`: contactor coil and feedback at address `cid`, meter and controller."""
    return {"id": cid, "standard": standard.value, "contactor_coil": cid, "contactor_feedback": cid,
            "meter": {"bus": "b", "device_id": cid, "model": "sdm630"},
            "controller": {"bus": "b", "device_id": 20 + cid}, **fields}


def module_links(matrix: dict[int, list[int]]) -> list[dict[str, Any]]:
    """module number -> the connectors it reaches, as [[power_modules.links]] (coil = feedback)."""
    return [{"module": f"pm{module}", "connector": cid, "coil": 16 + 4 * module + cid,
             "feedback": 16 + 4 * module + cid} for module, cids in matrix.items() for cid in cids]


def decode_station(data: bytes) -> StationSpec:
    """Zero bytes (where hypothesis starts and shrinks to) give two CCS connectors sharing
    four modules without dwell: the station where modules move."""
    d = Decoder(data)
    standards = [d.pick(STANDARDS) for _ in range(d.pick([2, 1, 3, 4]))]
    connectors = [decode_connector(index + 1, standard, d) for index, standard in enumerate(standards)]
    station = {"max_power_kw": d.pick([150, 400, 20, 50, 100]), "max_current_a": d.pick([None, 63, 250])}
    dc_minimum_kw = d.pick([1.0, 5.0, 20.0])
    sections: dict[str, Any] = {"station": station, "allocation": {
        "policy": d.pick(["equal_share", "first_come"]), "module_dwell_s": d.pick([0.0, 5.0, 30.0]),
        "min_power_kw": dict.fromkeys((s.value for s in DC_STANDARDS), dc_minimum_kw),
        "unused_margin_kw": d.pick([0.0, 3.0])}}
    dc_ids = [c["id"] for c in connectors if c["standard"] != Standard.TYPE2.value]
    if dc_ids:
        sections["power_modules"] = decode_modules(dc_ids, d)
    return StationSpec(station_config(connectors, **sections), d.pick([False, True]), d.pick([False, True]))


def decode_connector(cid: int, standard: Standard, d: Decoder) -> dict[str, Any]:
    if standard is Standard.TYPE2:
        return connector_entry(cid, standard, max_power_kw=d.pick([7.4, 11.0, 22.0]), phases=d.pick([1, 3]),
                               max_current_a=d.pick([None, 16.0, 32.0]))
    return connector_entry(cid, standard, max_power_kw=d.pick([50.0, 60.0, 150.0, 350.0]))


def decode_modules(dc_ids: list[int], d: Decoder) -> dict[str, Any]:
    """1-8 modules, each linked to a random non-empty set of the DC connectors."""
    every = 2 ** len(dc_ids) - 1
    matrix = {}
    for module in range(1, d.pick([4, 1, 2, 3, 5, 6, 7, 8]) + 1):
        mask = every - d.number(255) % every
        matrix[module] = [cid for position, cid in enumerate(dc_ids) if mask >> position & 1]
    return {"channel": "/dev/null", "count": len(matrix), "rated_kw": d.pick([15.0, 30.0, 40.0]),
            "max_current_a": d.pick([50.0, 100.0]), "links": module_links(matrix)}


# ---- smartw around the model -----------------------------------------------------------------------

@dataclass
class Stop:
    """A stop in progress (sessions.SessionControl._ramp_down_and_open)."""

    since: float
    unplug_after: bool


@dataclass
class Station:
    """The physical model, and what a running smartw holds around it."""

    spec: StationSpec
    model: StationModel
    bank: ModuleBank
    control: PowerControl
    connectors: dict[int, ConnectorRuntime]
    limits: StationLimits = field(default_factory=lambda: NO_STATION_LIMITS)
    stops: dict[int, Stop] = field(default_factory=dict)
    checked: int = 0  # switchings already checked

    @classmethod
    def build(cls, spec: StationSpec) -> Station:
        model = StationModel(spec.config, contact_delay=spec.contact_delay)
        bank = model.start_driver()
        return cls(spec, model, bank, new_control(model, bank), fresh_connectors(spec.config))

    def clock(self) -> float:
        return EPOCH + self.model.now

    def tick(self, where: str, dt_s: float = TICK_S) -> None:
        """Physics for one cycle, then (unless the e-stop stands) smartw's control cycle."""
        self.model.advance(dt_s)
        if not self.model.estop:
            self.progress_stops()
            self.cycle(where)
        check_switching(self, where)

    def cycle(self, where: str) -> None:
        for cid, connector in self.connectors.items():
            connector.controller = self.model.controller_snapshot(cid)
            connector.meter = self.model.meter(cid)
        before_w, first = self.model.offered_w(), len(self.model.commands)
        meter = self.model.station_meter() if self.spec.has_meter else None
        run_now(self.control.apply(self.connectors, self.model.io_snapshot(), meter, self.limits))
        check_limits(self, before_w, first, where)

    def progress_stops(self) -> None:
        for cid, stop in list(self.stops.items()):
            drawn = abs(self.model.connector_power_w(cid))
            if drawn < ZERO_POWER_W or self.model.now - stop.since >= RAMP_DOWN_TIMEOUT_S:
                run_now(self.model.set_contactor(cid, False))
                self.end_session(cid)
                if stop.unplug_after:
                    self.model.evs[cid] = None

    def end_session(self, cid: int) -> None:
        connector = self.connectors[cid]
        connector.session, connector.stopping, connector.allocated_w = None, False, 0.0
        self.stops.pop(cid, None)


def new_control(model: StationModel, bank: ModuleBank) -> PowerControl:
    return PowerControl(model.config, model, bank, clock=lambda: EPOCH + model.now)


def fresh_connectors(config: StationConfig) -> dict[int, ConnectorRuntime]:
    return {c.id: ConnectorRuntime(c) for c in config.connectors}


# ---- the events ------------------------------------------------------------------------------------

KINDS = ("plug", "stop", "demand", "limit", "module", "estop", "restart", "other_load", "wait", "plug",
         "wait")
WAIT_TICKS = (2, 8, 40)
EXTRA_TICKS = (0, 2, 5, 10)  # cycles after an event besides its own, from the kind byte's high bits
RESTART_GAP_S = (10.0, 30.0)  # longer than a lease and a ramp-down (a quicker one: see its own test)
BATTERY_V = (350.0, 400.0, 600.0, 750.0)
EVENT_BYTES = 3


def decode_events(data: bytes) -> list[tuple[str, int, int, int]]:
    """(kind, a, b, cycles that follow) per 3 bytes."""
    return [(KINDS[kind % len(KINDS)], a, b, 1 + EXTRA_TICKS[kind // len(KINDS) % len(EXTRA_TICKS)])
            for kind, a, b in zip(data[::3], data[1::3], data[2::3], strict=False)]


def apply_event(station: Station, kind: str, a: int, b: int) -> None:
    ids = station.model.connector_ids
    cid = ids[a % len(ids)]
    if kind == "plug":
        plug_and_start(station, cid, a, b)
    elif kind == "stop":
        begin_stop(station, cid, unplug_after=bool(b % 2))
    elif kind == "demand" and station.model.evs[cid] is not None:
        station.model.evs[cid].demand_w = 0.0 if b % 8 == 0 else b * 1500.0
    elif kind == "limit":
        station.limits = change_limit(station, a, b)
    elif kind == "module" and station.model.modules:
        change_module(station, a, b)
    elif kind == "estop":
        toggle_estop(station)
    elif kind == "restart":
        restart(station, crash=bool(a % 2), gap_s=RESTART_GAP_S[b % len(RESTART_GAP_S)])
    elif kind == "other_load":
        station.model.other_load_w = b * 500.0
    elif kind == "wait":
        for _ in range(WAIT_TICKS[b % len(WAIT_TICKS)]):
            station.tick(f"waiting ({station.model.now:.1f} s)", SLOW_TICK_S)


def plug_and_start(station: Station, cid: int, a: int, b: int) -> None:
    """Plug an EV (or take the one still plugged) and start as SessionControl.start does."""
    connector, model = station.connectors[cid], station.model
    if connector.session is not None or model.estop:
        return
    battery_v = BATTERY_V[a // 4 % len(BATTERY_V)]
    demand_w = ((b + 40) % 256 + 1) * 1500.0  # zero: 61.5 kW
    model.evs[cid] = Ev(battery_v, battery_v + (0.0, 10.0, 30.0)[a // 16 % 3], demand_w)
    connector.controller = model.controller_snapshot(cid)
    run_now(model.set_output(cid, False, 0.0))
    run_now(model.set_contactor(cid, True))
    started = datetime.fromtimestamp(station.clock(), UTC)
    connector.session = ActiveSession(f"s{cid}-{model.now}", "TAG", started, 0.0)


def begin_stop(station: Station, cid: int, *, unplug_after: bool) -> None:
    connector = station.connectors[cid]
    if connector.session is None or connector.stopping:
        return
    connector.stopping = True
    run_now(station.model.set_output(cid, False, 0.0))
    station.stops[cid] = Stop(station.model.now, unplug_after)


NO_STATION_LIMITS = StationLimits(NO_LIMITS, {})


def change_limit(station: Station, a: int, b: int) -> StationLimits:
    """`a` picks the limit (station or a connector's, OCPP or operator, or none at all), `b`
    its value: none, or kW, an OCPP one expiring within a minute or never."""
    limits, now = station.limits, station.clock()
    ids = station.model.connector_ids
    cid = ids[a // 5 % len(ids)]
    watts = None if b % 7 == 0 else b * 1000.0
    ocpp = None if watts is None else ExternalLimit(watts, "TxProfile", now + b % 60 if b % 3 else None)
    scope = limits.station if a % 5 < 2 else limits.connectors.get(cid, NO_LIMITS)
    match a % 5:
        case 0:
            return replace(limits, station=replace(scope, ocpp_limit=ocpp))
        case 1:
            return replace(limits, station=replace(scope, operator_limit_w=watts))
        case 2:
            return replace(limits, connectors={**limits.connectors, cid: replace(scope, ocpp_limit=ocpp)})
        case 3:
            operator = replace(scope, operator_limit_w=watts)
            return replace(limits, connectors={**limits.connectors, cid: operator})
    return NO_STATION_LIMITS


def change_module(station: Station, a: int, b: int) -> None:
    module = list(station.model.modules.values())[a % len(station.model.modules)]
    match b % 3:
        case 0:
            module.faulted = True
        case 1:
            module.online = False
        case _:
            module.faulted, module.online = False, True


def toggle_estop(station: Station) -> None:
    """Pressed: the coil circuit opens, the guard opens everything (emergency), switches every
    module off and ends every session at once. Released: the cycles resume."""
    model = station.model
    if model.estop:
        model.estop = False
        return
    model.press_estop()
    run_now(model.open_all(emergency=True))
    run_now(station.bank.switch_all_off())
    for cid, connector in station.connectors.items():
        if connector.session is not None:
            station.end_session(cid)


def model_sleep(station: Station) -> Callable[[float], Awaitable[None]]:
    """open_unloaded's waiting as time passing in the model, every switching checked."""
    async def sleep(seconds: float) -> None:
        station.model.advance(seconds)
        check_switching(station, f"while smartw waits for zero current ({station.model.now:.1f} s)")
    return sleep


def restart(station: Station, *, crash: bool, gap_s: float) -> None:
    """Without `crash`: a new PowerControl on the same station (its memory lost, nothing
    else). With it: smartw dies, the station runs on alone for the gap, and a new smartw starts
    as service.run does: open_unloaded (controllers off, zero current, then open), the driver's
    first re-send (every module off), open sessions closed (PowerLoss), a new PowerControl."""
    model = station.model
    if crash:
        model.stop_driver()
        station.stops.clear()
        for _ in range(round(gap_s / SLOW_TICK_S)):
            model.advance(SLOW_TICK_S)
            check_switching(station, f"while smartw is down ({model.now:.1f} s)")
        run_now(open_unloaded(model, model.connector_ids, sleep=model_sleep(station),
                              clock=lambda: model.now))
        check_switching(station, "at smartw's start (open_unloaded)")
        station.bank = model.start_driver()
        station.connectors = fresh_connectors(station.spec.config)
    station.control = new_control(model, station.bank)


# ---- the invariants --------------------------------------------------------------------------------

def station_budget_w(station: Station) -> float:
    return limited_w(station.spec.config.station.max_power_kw * 1000, station.limits.station,
                     station.clock()) - other_load_w(station)


def limited_w(rating_w: float, scope: ScopeLimits, now: float) -> float:
    caps = [rating_w]
    if scope.operator_limit_w is not None:
        caps.append(scope.operator_limit_w)
    ocpp = scope.ocpp_limit
    if ocpp is not None and (ocpp.expires_at is None or now < ocpp.expires_at):
        caps.append(ocpp.limit_w)
    return min(caps)


def other_load_w(station: Station) -> float:
    return station.model.other_load_w if station.spec.has_meter else 0.0


def connector_cap_w(station: Station, cid: int) -> float:
    config = station.spec.config.connector(cid)
    rating_w = config.max_power_kw * 1000
    if not config.is_dc and config.max_current_a is not None:
        rating_w = min(rating_w, config.max_current_a * config.ac_phases * PHASE_VOLTAGE_V)
    return limited_w(rating_w, station.limits.connectors.get(cid, NO_LIMITS), station.clock())


def amps_per_w(station: Station, cid: int) -> float:
    config = station.spec.config.connector(cid)
    return 1 / ((DC_PHASES if config.is_dc else config.ac_phases) * PHASE_VOLTAGE_V)


def check_limits(station: Station, before_w: float, first_command: int, where: str) -> None:
    """Invariant 1 after a control cycle, and while its writes went out (decreases first)."""
    model = station.model
    budget_w = max(station_budget_w(station), 0.0)
    offered = {cid: c.offered_w for cid, c in model.controllers.items()}
    assert sum(offered.values()) <= budget_w + TOLERANCE_W, \
        f"controllers offered {offered} over the station budget {budget_w:.0f} W {where}"
    for command in model.commands[first_command:]:
        assert command.offered_sum_w <= max(before_w, budget_w) + TOLERANCE_W, \
            f"offers rose to {command.offered_sum_w:.0f} W while the writes went out ({command}) {where}"
    limit_a = station.spec.config.station.max_current_a
    if limit_a is not None:
        budget_a = max(limit_a - other_load_w(station) / (DC_PHASES * PHASE_VOLTAGE_V), 0.0)
        amps = sum(watts * amps_per_w(station, cid) for cid, watts in offered.items())
        assert amps <= budget_a + 1e-6, \
            f"{amps:.2f} A per phase offered, the station allows {budget_a:.2f} A {where}"
    for cid, watts in offered.items():
        cap_w = connector_cap_w(station, cid)
        assert watts <= cap_w + TOLERANCE_W, f"connector {cid} offered {watts:.0f} W > {cap_w:.0f} W {where}"
    check_module_setpoints(station, where)


def check_module_setpoints(station: Station, where: str) -> None:
    """The modules on a connector are never set to give more than its controller may offer."""
    model = station.model
    for cid, names in model.matrix.items():
        watts = slack = 0.0
        for name in names:
            link = model.links[link_key(name, cid)]
            setpoint = station.bank.setpoint(model.modules[name].address)
            if (link.coil or link.contact) and setpoint.on:
                volts, amps = setpoint.voltage_mv / 1000, setpoint.current_ma / 1000
                watts += volts * amps
                slack += SETPOINT_STEP * (volts + amps)
        offered = model.controllers[cid].offered_w
        assert watts <= offered + TOLERANCE_W + slack, \
            f"modules on connector {cid} set to {watts:.0f} W, its controller offers {offered:.0f} W {where}"


def voltages_match(module_v: float, bus_v: float) -> bool:
    if module_v <= DEAD_BUS_V and bus_v <= DEAD_BUS_V:
        return True
    return abs(module_v - bus_v) <= max(VOLTAGE_MATCH_V, VOLTAGE_MATCH_SHARE * bus_v)


def check_switching(station: Station, where: str) -> None:
    """Invariant 3 over every contact that moved since the last check."""
    model = station.model
    for switching in model.switchings[station.checked:]:
        check_one_switching(switching, where)
    station.checked = len(model.switchings)
    for name, links in model.links_of.items():
        coils, contacts = sum(link.coil for link in links), sum(link.contact for link in links)
        assert coils <= 1 and contacts <= 1, \
            f"{name} linked to {coils} connectors (coils), {contacts} (contacts) {where}"


def check_one_switching(switching: Switching, where: str) -> None:
    if not switching.emergency:
        assert switching.current_a <= ZERO_CURRENT_A, f"switched under load: {switching} {where}"
    if switching.closed and switching.module_v is not None:
        assert switching.bus_v is not None and voltages_match(switching.module_v, switching.bus_v), \
            f"link closed at unmatched voltage: {switching} {where}"


def run_scenario(spec: StationSpec, events: list[tuple[str, int, int, int]]) -> Station:
    """Every event, each followed by its control cycles; every step checked."""
    station = Station.build(spec)
    for index, (kind, a, b, cycles) in enumerate(events):
        where = f"at event {index} ({kind}, {a}, {b}), t={station.model.now:.1f} s"
        apply_event(station, kind, a, b)
        check_switching(station, where)
        for _ in range(cycles):
            station.tick(where)
    return station
