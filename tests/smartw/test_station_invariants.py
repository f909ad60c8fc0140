"""Safety invariants 1, 3 and 4 of ARCHITECTURE.md over whole-station sequences.

Invariants 1 and 3: smartw's control cycle (PowerControl.apply, workers/smartw/power_control.py)
drives a physical station model (tests/smartw/station_model.py) through random stations (1-4
connectors of mixed standards, 0-8 DC power modules, random contactor matrices, contacts that
follow their coils at once or a step later) and random sequences of plug and start, stop the
way smartw stops (controller off, wait for zero current, contactor open; sessions.py), demand
changes, OCPP and operator limits with expiry, other loads on the station meter, module
faults, outages and recoveries, e-stop (the guard's open_all(emergency=True) and
switch_all_off, no control cycles while it stands), smartw restarts (a new PowerControl on the
same hardware; or the process dying and starting again as service.run starts it) and time
passing. After every control cycle: the controllers' limits keep the station's, the
connectors' and the OCPP limits, also while the writes go out, and the modules' setpoints on a
connector never exceed its controller's limit. At every step: no contact moved with more than
ZERO_CURRENT_A through it (e-stop excepted), no module on two connectors, no link closed onto a
voltage its module did not match.

Invariant 4: the real simulated devices (workers/sim) fall to zero output on their own when
smartw falls silent: the power modules after their silence timeout, the charge controllers
when the lease of the station's last command runs out; whatever came before.

Random stations and sequences are decoded from bytes (tests/smartw/station_scenarios.py).
The CI profile checks 10,000 scenarios (2,000 short and 1,000 long station sequences, 4,000
module and 3,000 controller silences: about 40 s); `HYPOTHESIS_PROFILE=long` checks 20 times
as many (no pytest timeout). `--hypothesis-show-statistics` shows what the scenarios reached.
The xfail tests at the end are known gaps, each with the reason it fails.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from bus.enums import Standard
from tests.smartw.station_scenarios import (
    EVENT_BYTES,
    STANDARDS,
    TICK_S,
    Station,
    StationSpec,
    begin_stop,
    check_switching,
    connector_entry,
    decode_events,
    decode_station,
    module_links,
    plug_and_start,
    restart,
    run_now,
    run_scenario,
    station_config,
)
from workers.common.station_config import ConnectorConfig
from workers.drivers.controllers.station_dc import NO_LIMIT, HoldingRegister, encode_lease, encode_output
from workers.drivers.infypower_frames import (
    CONTROLLER_ADDRESS,
    Command,
    FrameId,
    StatusFlag,
    encode_on_off,
    encode_set_output,
)
from workers.sim.ev import Battery, SimulatedEv
from workers.sim.ev_controller import SimulatedController
from workers.sim.ev_sessions.base import SIM_TIME_SCALE
from workers.sim.power_modules import FAULT_KINDS, Load, PowerModuleBank, SimulatedPowerModule
from workers.sim.slcan_adapter import CanFrame
from workers.smartw.hardware import OUTPUT_LEASE_S
from workers.smartw.module_switching import ZERO_CURRENT_A

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
SCALE = 20 if LONG else 1  # the long profile runs 20 times as many scenarios
settings.register_profile("station-invariants", deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = settings.get_profile("station-invariants")
TIME_LIMIT = pytest.mark.timeout(0 if LONG else 120)


# ---- the property ----------------------------------------------------------------------------------

stations = st.binary(min_size=40, max_size=40).map(decode_station)
short_scenarios = st.binary(min_size=EVENT_BYTES, max_size=8 * EVENT_BYTES).map(decode_events)
long_scenarios = st.binary(min_size=8 * EVENT_BYTES, max_size=24 * EVENT_BYTES).map(decode_events)


@TIME_LIMIT
@settings(PROFILE, max_examples=2_000 * SCALE)
@given(spec=stations, events=short_scenarios)
def test_every_step_of_a_short_random_station_sequence_keeps_invariants_1_and_3(spec: StationSpec,
                                                                                 events) -> None:
    check_scenario(spec, events)


@TIME_LIMIT
@settings(PROFILE, max_examples=1_000 * SCALE)
@given(spec=stations, events=long_scenarios)
def test_every_step_of_a_long_random_station_sequence_keeps_invariants_1_and_3(spec: StationSpec,
                                                                                events) -> None:
    """Long enough for modules to join, carry current, move between connectors and leave."""
    check_scenario(spec, events)


def check_scenario(spec: StationSpec, events: list[tuple[str, int, int, int]]) -> None:
    note(f"{spec!r}\nevents: {events}")
    for label in coverage(run_scenario(spec, events)):
        event(label)


def coverage(station: Station) -> list[str]:
    """What a scenario got to (pytest --hypothesis-show-statistics), so a model that never
    carries current or never moves a module shows up as such."""
    model = station.model
    joined: dict[str, set[int]] = {}
    for switching in model.switchings:
        if isinstance(switching.key, str) and switching.closed:
            name, cid = model.link_ends[switching.key]
            joined.setdefault(name, set()).add(cid)
    labels = {
        "modules carried current": model.peak_module_current_a > ZERO_CURRENT_A,
        "a module moved between connectors": any(len(cids) > 1 for cids in joined.values()),
        "a link opened": any(isinstance(s.key, str) and not s.closed for s in model.switchings),
        "an emergency open under load": any(s.emergency and s.current_a > ZERO_CURRENT_A
                                            for s in model.switchings),
    }
    return [label for label, reached in labels.items() if reached]


# ---- golden scenarios and known gaps ---------------------------------------------------------------

def golden_station(**modules: Any) -> StationSpec:
    """Two CCS connectors sharing four 30 kW modules, no dwell, contacts one step late."""
    connectors = [connector_entry(cid, Standard.CCS, max_power_kw=150.0) for cid in (1, 2)]
    power_modules = {"channel": "/dev/null", "count": 4, "rated_kw": 30.0, **modules,
                     "links": module_links({module: [1, 2] for module in range(1, 5)})}
    config = station_config(connectors, station={"max_power_kw": 400}, power_modules=power_modules,
                            allocation={"module_dwell_s": 0.0})
    return StationSpec(config, contact_delay=True, has_meter=False)


def run_for(station: Station, seconds: float) -> None:
    for _ in range(round(seconds / TICK_S)):
        station.tick(f"at t={station.model.now:.1f} s")


def test_modules_move_to_the_next_ev_when_a_session_ends_without_switching_under_load() -> None:
    station = Station.build(golden_station())
    model = station.model
    plug_and_start(station, 1, 4, 118)  # 400 V battery, 240 kW asked
    run_for(station, 10.0)
    assert model.connector_current_a(1) == pytest.approx(300.0)  # four 30 kW modules at 75 A
    plug_and_start(station, 2, 4, 118)
    run_for(station, 5.0)
    begin_stop(station, 1, unplug_after=True)
    run_for(station, 15.0)
    assert station.connectors[1].session is None and model.evs[1] is None
    assert model.connector_current_a(2) == pytest.approx(300.0)
    opened = [s for s in model.switchings if not s.closed]
    assert {s.key for s in opened} >= {1, "pm1>1", "pm3>1", "pm4>1"}
    assert all(s.current_a <= ZERO_CURRENT_A for s in opened)


def test_two_dc_evs_end_up_sharing_the_modules_equally() -> None:
    station = Station.build(golden_station())
    plug_and_start(station, 1, 4, 118)
    run_for(station, 10.0)
    plug_and_start(station, 2, 4, 118)
    run_for(station, 30.0)
    assert station.model.connector_current_a(1) == pytest.approx(150.0)
    assert station.model.connector_current_a(2) == pytest.approx(150.0)


def test_the_checks_see_a_link_opened_under_load() -> None:
    """The checks can fail: a loaded module's link opened behind smartw's back is caught."""
    station = Station.build(golden_station())
    plug_and_start(station, 1, 4, 118)
    run_for(station, 10.0)
    run_now(station.model.set_link("pm1", 1, False))
    station.model.advance(TICK_S)  # the contact follows its coil
    with pytest.raises(AssertionError, match="switched under load"):
        check_switching(station, "after the link was opened by hand")


def test_a_quick_restart_after_a_crash_opens_no_contactor_under_load() -> None:
    """smartw dies mid-session and is back after 1 s, inside the controller's lease: it turns
    the controllers off and waits for zero current before it opens anything (open_unloaded)."""
    station = Station.build(golden_station())
    plug_and_start(station, 1, 4, 118)
    run_for(station, 10.0)
    restart(station, crash=True, gap_s=1.0)
    run_for(station, TICK_S)  # the contacts follow their coils


def test_a_module_that_falls_silent_while_loaded_has_its_link_opened_only_at_zero_current() -> None:
    """pm1 drops off the CAN bus while it carries current; it switches itself off after its
    silence timeout and ramps down; its link opens only once that has surely happened."""
    station = Station.build(golden_station(silence_timeout_s=0.6, resend_s=0.1, max_current_a=100.0))
    plug_and_start(station, 1, 4, 118)
    run_for(station, 10.0)
    module = station.model.modules["pm1"]
    assert module.current_a == pytest.approx(75.0)
    module.online = False
    run_for(station, 0.8)
    assert not module.on and module.current_a > ZERO_CURRENT_A, "pm1 switched itself off, ramps down"
    run_for(station, 12.0)  # every step checks that no link opens under load
    assert "pm1" not in station.control.modules or station.control.modules["pm1"].commanded == frozenset()


# ---- invariant 4: the real simulated devices fall to zero on their own -------------------------------

DEVICE_TICK_S = 0.1  # twice the simulated bank's own tick (power_modules.TICK_S): any dt works
SILENCE_TIMEOUTS_S = (2.0, 10.0, 0.5)  # ops/station.sim.toml's, a real Infypower's, a short one
MODULE_KINDS = ("set", "on", "off", "load", "unload", "fault", "clear", "offline", "online", "run", "run")


@dataclass
class ModuleStation:
    """smartw's driver as the modules hear it: frames, and every setpoint re-sent each resend_s."""

    bank: PowerModuleBank
    resend_s: float
    setpoints: dict[int, tuple[bool, int, int]] = field(default_factory=dict)  # address -> on, mV, mA
    now: float = 0.0

    def send(self, address: int, command: Command, data: bytes) -> None:
        frame_id = FrameId(command, destination=address, source=CONTROLLER_ADDRESS)
        self.bank.receive(CanFrame(frame_id.encode(), data))

    def command(self, address: int, on: bool, voltage_mv: int, current_ma: int) -> None:
        self.setpoints[address] = (on, voltage_mv, current_ma)
        self.send(address, Command.SET_OUTPUT, encode_set_output(voltage_mv, current_ma))
        self.send(address, Command.ON_OFF, encode_on_off(on))

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.bank.advance(DEVICE_TICK_S)
            self.now += DEVICE_TICK_S
            if self.now % self.resend_s < DEVICE_TICK_S:
                for address, setpoint in self.setpoints.items():
                    self.command(address, *setpoint)


def drive_modules(data: bytes) -> ModuleStation:
    """Two modules charging an EV (from the first three bytes: timeout, battery, current), then
    random commands, EV changes, faults, outages and time, three bytes each."""
    timeout_s = SILENCE_TIMEOUTS_S[data[0] % len(SILENCE_TIMEOUTS_S)]
    modules = [SimulatedPowerModule(f"pm{n + 1}", n, silence_timeout_s=timeout_s) for n in range(2)]
    station = ModuleStation(PowerModuleBank(modules), resend_s=timeout_s / 4)
    battery_v, current_a = 300.0 + data[1] * 2, 10.0 + data[2] % 91
    for module in modules:
        module.apply_load(Load(battery_v, demand_a=100.0))
        station.command(module.address, True, round((battery_v + 20) * 1000), round(current_a * 1000))
    station.run(round(4.0 / DEVICE_TICK_S))
    for i in range(3, len(data) - 2, 3):
        kind, a, b = MODULE_KINDS[data[i] % len(MODULE_KINDS)], data[i + 1], data[i + 2]
        module = modules[a % 2]
        on, voltage_mv, current_ma = station.setpoints.get(module.address, (False, 0, 0))
        match kind:
            case "set":
                station.command(module.address, on, 200_000 + a // 2 * 6_000, b * 400)
            case "on" | "off":
                station.command(module.address, kind == "on", voltage_mv, current_ma)
            case "load":
                module.apply_load(Load(battery_voltage_v=300.0 + b * 2, demand_a=b * 0.5))
            case "unload":
                module.apply_load(None)
            case "fault":
                module.inject_fault(FAULT_KINDS[b % len(FAULT_KINDS)])
            case "clear":
                module.clear_faults()
            case "offline" | "online":
                module.set_online(kind == "online")
            case "run":
                station.run(b % 40)
    return station


@TIME_LIMIT
@settings(PROFILE, max_examples=4_000 * SCALE)
@given(data=st.binary(min_size=3, max_size=(1 + 20) * EVENT_BYTES))
def test_power_modules_switch_off_and_fall_to_zero_when_smartw_falls_silent(data: bytes) -> None:
    """Whatever smartw commanded and whatever the EV and the modules did: once nothing is heard
    for the silence timeout (the modules' lease) plus one tick, every module is off, its
    current only falls, and it reaches zero within its ramp and stays there."""
    station = drive_modules(data)
    note(f"modules {[vars(m) for m in station.bank.modules]}")
    lease_s = station.bank.modules[0].silence_timeout_s
    ramp = station.bank.modules[0].ramp
    zero_by_s = lease_s + DEVICE_TICK_S + max(100.0 / ramp.current_a_per_s, 1000.0 / ramp.voltage_v_per_s)
    previous = {m.name: m.current_a for m in station.bank.modules}
    if any(current > ZERO_CURRENT_A for current in previous.values()):
        event("a module carried current when smartw fell silent")
    silent_s = 0.0
    while silent_s < zero_by_s + 2.0:
        station.bank.advance(DEVICE_TICK_S)
        silent_s += DEVICE_TICK_S
        for module in station.bank.modules:
            where = f"{module.name} {silent_s:.2f} s into the silence"
            if silent_s >= lease_s + DEVICE_TICK_S:
                assert not module.commanded_on and module.status() & StatusFlag.DC_SIDE_OFF, where
                assert module.current_a <= previous[module.name], where
            if silent_s >= zero_by_s:
                assert module.current_a == 0.0, where
                assert module.load is not None or module.voltage_v == 0.0, where
            previous[module.name] = module.current_a


CONTROLLER_TICK_S = 0.1
CHARGING_AFTER_S = 4.0  # a session reaches CHARGING within this (sessions at SIM_TIME_SCALE)
RESEND_S = 0.5  # smartw re-sends its command every cycle; a slow cycle here
CONTROLLER_KINDS = ("plug", "unplug", "command", "command", "pause", "run", "run")


@dataclass
class FakeClock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ControllerStation:
    """smartw's commands as a station-protocol controller receives them (the FC16 requests
    StationDcController writes: command and lease in one request), on the controller's clock."""

    controller: SimulatedController
    clock: FakeClock

    @property
    def now(self) -> float:
        return self.clock.now

    def set_output(self, enabled: bool, power_w: float) -> None:
        """ModbusStationHardware.set_output: a lease of OUTPUT_LEASE_S with every enable."""
        words = encode_output(enabled, power_w)
        if enabled:
            words = [*words, NO_LIMIT, NO_LIMIT, encode_lease(OUTPUT_LEASE_S)]
        self.controller.wire.write(HoldingRegister.ENABLE, words)

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.clock.now += CONTROLLER_TICK_S
            self.controller.step(live=True, dt_s=CONTROLLER_TICK_S)


def drive_controller(data: bytes) -> ControllerStation:
    """An EV charging (from the first three bytes: standard, SoC, power), then random commands,
    plugs, pauses and time, three bytes each."""
    standard = STANDARDS[data[0] % len(STANDARDS)]
    config = ConnectorConfig.model_validate(connector_entry(1, standard, max_power_kw=150.0))
    clock = FakeClock()
    controller = SimulatedController(config, time_scale=SIM_TIME_SCALE, clock=clock)
    station = ControllerStation(controller, clock)
    controller.plug(SimulatedEv(Battery(60.0, data[1] % 80), 90.0, max_power_w=(data[2] + 8) * 1000.0))
    for _ in range(round(CHARGING_AFTER_S / RESEND_S)):
        station.set_output(True, 150_000.0)
        station.run(round(RESEND_S / CONTROLLER_TICK_S))
    for i in range(3, len(data) - 2, 3):
        kind, a, b = CONTROLLER_KINDS[data[i] % len(CONTROLLER_KINDS)], data[i + 1], data[i + 2]
        match kind:
            case "plug" if controller.session is None:
                ev = SimulatedEv(Battery(60.0, b % 90), target_soc=90.0, max_power_w=(a + 1) * 1000.0)
                controller.plug(ev)
            case "unplug" if controller.session is not None:
                controller.unplug()
            case "command":  # smartw enables with a power limit, or disables at 0 W
                station.set_output(bool(a % 2), b * 1000.0 if a % 2 else 0.0)
            case "pause" if controller.session is not None:
                controller.set_paused(not controller.session.ev.paused)
            case "run":
                station.run(b % 60)
    return station


@TIME_LIMIT
@settings(PROFILE, max_examples=3_000 * SCALE)
@given(data=st.binary(min_size=3, max_size=(1 + 20) * EVENT_BYTES))
def test_charge_controllers_drop_their_output_when_the_lease_runs_out(data: bytes) -> None:
    """Whatever smartw wrote and whatever the EV did: once no command has come for the lease
    of the last one plus one tick, the controller offers nothing, and the current it delivers
    only falls, reaches zero within a second and stays there."""
    station = drive_controller(data)
    controller = station.controller
    note(f"controller {controller.command}, lease {controller.lease}, session {controller.view()}")
    lease_s = controller.lease.duration_s or 0.0
    expired_at = station.now + lease_s + CONTROLLER_TICK_S
    previous = delivered_a(controller)
    if previous > 0:
        event("the controller delivered current when smartw fell silent")
    while station.now < expired_at + 3.0:
        station.run(1)
        where = f"{station.now - expired_at + lease_s + CONTROLLER_TICK_S:.2f} s into the silence"
        current = delivered_a(controller)
        if station.now >= expired_at:
            assert not controller.command.enabled and controller.command.limits.power_w == 0.0, where
            assert current <= previous, where
        if station.now >= expired_at + 1.0:
            assert current == 0.0, where
        previous = current


def delivered_a(controller: SimulatedController) -> float:
    view = controller.view()
    return (view.present.current_a or 0.0) if view is not None else 0.0


def test_a_module_joins_a_charging_bus_at_the_voltage_its_controller_measures() -> None:
    """Found by the long random sequences: two modules on connector 2 read their own 380 V
    output while its controller measured the battery's 350 V; taking the higher as the bus
    voltage let a third module close its link at 380 V onto a 350 V bus. The controller's
    measurement of its own bus wins (power_control._bus_voltage)."""
    connectors = [connector_entry(cid, Standard.CCS, max_power_kw=50.0) for cid in (1, 2)]
    power_modules = {"channel": "/dev/null", "count": 4, "rated_kw": 15.0, "max_current_a": 50.0,
                     "links": module_links({module: [1, 2] for module in range(1, 5)})}
    config = station_config(connectors, station={"max_power_kw": 150}, power_modules=power_modules,
                            allocation={"module_dwell_s": 0.0})
    events = [("plug", 1, 0, 6), ("plug", 0, 0, 6), ("estop", 0, 0, 3), ("plug", 0, 0, 1),
              ("estop", 0, 0, 3), ("plug", 81, 0, 6), ("plug", 0, 0, 1), ("stop", 0, 0, 6)]
    run_scenario(StationSpec(config, contact_delay=False, has_meter=False), events)  # checks every step
