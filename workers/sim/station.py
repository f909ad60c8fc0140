"""The simulated station's hardware: Modbus servers with every configured device, and physics.

One pymodbus server per bus of station.toml serves each device id configured on it: a
ModbusTcpServer for a `modbus_tcp` bus, a ModbusSerialServer at the far end of a simulated
RS485 line (workers/sim/rtu_line.py) for a `modbus_rtu` bus; every device can be switched
offline or given wire faults (workers/sim/modbus_answers.py, `wire_switches()`).
`tick()` moves the world on: an EV draws power only while its connector's contactor is closed
(the IO module's model, workers/sim/io_module.py: coil, feedback delay, faults, host watchdog),
its controller's `enable` is 1 and the e-stop is released (the e-stop is wired into the
contactor circuit, as on a real station), at min(power limit, EV max, taper); with
`[power_modules]`, a DC EV's current also comes only from the modules linked to its connector
(workers/sim/dc_supply.py), so it is at most what they deliver; meters
integrate energy (monotonic, kept across simulator restarts in a small state file) and
controllers report the EV's state. The world is read from and written to the
servers' registers (`async_getValues`/`async_setValues`), so a driver sees only the wire.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import SimDevice

from bus.enums import Standard
from workers.common.station_config import (
    ConnectorConfig,
    DeviceRef,
    MeterConfig,
    ModbusRtuBus,
    ModbusTcpBus,
    StationConfig,
)
from workers.drivers.controllers import ControllerConfigError
from workers.drivers.meter import MeterSnapshot
from workers.sim import devices
from workers.sim.dc_supply import ModuleSupply, ev_load
from workers.sim.ev import SimulatedEv
from workers.sim.ev_controller import SimulatedController
from workers.sim.ev_controller_wire import port_of
from workers.sim.faults import FaultState
from workers.sim.imd import SimImd
from workers.sim.io_module import SimIoModule
from workers.sim.mercury_port import MercuryLinkError
from workers.sim.meters import SimMeter, SimMeterError
from workers.sim.modbus_answers import DeviceAnswers, device_switch
from workers.sim.power_modules import PowerModuleBank
from workers.sim.rtu_line import LineLinkError, SimulatedRtuBus

log = logging.getLogger(__name__)

AC_VOLTAGE_V = 230.0  # phase-to-neutral voltage the AC meters see
AC_PHASES = 3
INITIAL_ENERGY_WH = 100_000.0  # a meter that has been in service, so register != session energy
CABINET_LOAD_W = 350.0  # what the station itself draws (PC, screen, fans, idle modules)
STATION_METER_KEY = 0  # the station meter's energy in the state file (connector 0 = the station)


class SimConfigError(ValueError):
    """station.toml describes wiring the simulator cannot serve."""


class SimStartError(RuntimeError):
    """A simulated bus cannot listen (its port is taken, e.g. by another simulator)."""


@dataclass
class SimConnector:
    config: ConnectorConfig
    meter: SimMeter
    energy_wh: float
    power_w: float = 0.0
    controller: SimulatedController = field(init=False)  # runs the plugged EV's session

    def __post_init__(self) -> None:
        try:
            self.controller = SimulatedController(self.config)
        except ControllerConfigError as error:
            raise SimConfigError(str(error)) from error

    @property
    def ev(self) -> SimulatedEv | None:
        return self.controller.ev


@dataclass
class _BusDevices:
    config: ModbusTcpBus | ModbusRtuBus
    devices: dict[int, SimDevice] = field(default_factory=dict)
    switches: dict[int, FaultState] = field(default_factory=dict)  # online/faults by device id
    rtu: SimulatedRtuBus | None = None  # the line of a running modbus_rtu bus


class SimStation:
    """`power_modules`: the simulated modules of `[power_modules]` (the sim service's bank);
    without them (or without that section) DC controllers power their EVs themselves."""

    def __init__(self, config: StationConfig, state_path: Path,
                 power_modules: PowerModuleBank | None = None) -> None:
        self.config = config
        self.state_path = state_path
        saved = _load_energies(state_path)
        self.connectors = {
            c.id: SimConnector(c, _sim_meter(config, f"meter{c.id}", c.meter),
                               saved.get(c.id, INITIAL_ENERGY_WH))
            for c in config.connectors
        }
        self.station_meter = (_sim_meter(config, "meter_station", config.station.meter)
                              if config.station.meter is not None else None)
        self.station_energy_wh = saved.get(STATION_METER_KEY, INITIAL_ENERGY_WH)
        self.imd = SimImd(config.imd) if config.imd is not None else None
        self.io = SimIoModule(config, imd_alarm=lambda: self.imd is not None and self.imd.alarm_active)
        self.buses = _plan_buses(config, self.io, self.imd, self._meters())
        self.servers: dict[str, ModbusTcpServer | ModbusSerialServer] = {}
        self.supply = (ModuleSupply(config.power_modules, config.module_matrix(), self.io, power_modules)
                       if config.power_modules is not None and power_modules is not None else None)

    @property
    def links_opened_under_load(self) -> int:
        """Module links that opened while their module carried current (not by the e-stop)."""
        return self.supply.links_opened_under_load if self.supply is not None else 0

    async def start(self) -> None:
        """Listen on every bus's port; the devices start idle (no EV, coils off, e-stop released)."""
        for name, bus in self.buses.items():
            if isinstance(bus.config, ModbusRtuBus):
                self.servers[name] = await _serve_rtu(name, bus)
            else:
                self.servers[name] = await _serve_tcp(name, bus, bus.config)
        try:
            for meter in self._meters():
                meter.open()
        except (MercuryLinkError, OSError) as error:
            raise SimStartError(f"a Mercury meter cannot open its line: {error}") from error
        await self.io.attach(self._server(self.config.io_module))
        if self.imd is not None:
            await self.imd.attach(self._server(self.imd.config))
        for connector in self.connectors.values():
            await self._show(connector, contactor_closed=False)
        await self._show_station_meter()

    async def stop(self) -> None:
        self.save()
        for meter in self._meters():
            meter.close()
        self.io.detach()
        if self.imd is not None:
            self.imd.detach()
        for name, server in self.servers.items():
            rtu = self.buses[name].rtu
            await (rtu.stop() if rtu is not None else server.shutdown())
        self.servers.clear()

    def wire_switches(self) -> list[FaultState]:
        """Every Modbus device's online flag and wire faults ('meter1', 'controller2', 'io'...),
        for `sim offline|online|fault|clear` (see workers/sim/modbus_answers.py)."""
        return [switch for bus in self.buses.values() for switch in bus.switches.values()]

    def rtu_bus(self, name: str) -> SimulatedRtuBus:
        """A running modbus_rtu bus: its line (wire delay, noise) and its devices' answers."""
        rtu = self.buses[name].rtu
        if rtu is None:
            raise KeyError(f"bus {name!r} is not a running modbus_rtu bus")
        return rtu

    def save(self) -> None:
        """Keep the meters' registers for the next start (written atomically)."""
        data = {str(cid): c.energy_wh for cid, c in self.connectors.items()}
        data[str(STATION_METER_KEY)] = self.station_energy_wh
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data), encoding="utf-8")
        os.replace(temporary, self.state_path)

    # ---- what `manage.py sim` changes ---------------------------------------------

    def plug(self, connector_id: int, ev: SimulatedEv, standard: Standard | None = None) -> None:
        """PlugError (reason key) if the connector is taken or does not fit the EV's standard."""
        self.connectors[connector_id].controller.plug(ev, standard)

    def unplug(self, connector_id: int) -> None:
        self.connectors[connector_id].controller.unplug()

    async def set_estop(self, pressed: bool) -> None:
        await self.io.set_estop(pressed)

    async def set_door(self, open_: bool) -> None:
        """NotWired if station.toml has no door switch."""
        await self.io.set_door(open_)

    # ---- physics -------------------------------------------------------------------

    async def tick(self, dt_s: float) -> None:
        await self.io.tick()
        if self.imd is not None:
            await self.imd.tick()
        estop = self.io.estop_pressed
        if self.supply is not None:
            self.supply.update({cid: ev_load(c.controller) if self._live(c, estop) else None
                                for cid, c in self.connectors.items() if c.config.is_dc}, estop=estop)
        for connector in self.connectors.values():
            await self._step(connector, dt_s, estop)
        self.station_energy_wh += self._station_power_w() * dt_s / 3600.0
        await self._show_station_meter()

    def _live(self, connector: SimConnector, estop: bool) -> bool:
        return self.io.conducts(connector.config.id) and not estop

    async def _step(self, connector: SimConnector, dt_s: float, estop: bool) -> None:
        closed = self._live(connector, estop)
        supply_a = (self.supply.current_a(connector.config.id)
                    if self.supply is not None and connector.config.is_dc else None)
        connector.power_w = connector.controller.step(live=closed, dt_s=dt_s, supply_a=supply_a)
        connector.energy_wh += connector.power_w * dt_s / 3600.0
        await self._show(connector, contactor_closed=closed)

    async def _show(self, connector: SimConnector, *, contactor_closed: bool) -> None:
        """Write the connector's meter registers from the model; the controller answers from
        its own state once its device's port is attached (start() shows every connector)."""
        await connector.meter.show(self.servers, self._meter_view(connector, contactor_closed))
        self._attach_controller(connector)

    def _meters(self) -> list[SimMeter]:
        meters = [connector.meter for connector in self.connectors.values()]
        return meters + ([self.station_meter] if self.station_meter is not None else [])

    def _station_power_w(self) -> float:
        """The grid connection: every connector plus the cabinet's own load (PC, fans, modules idle)."""
        return CABINET_LOAD_W + sum(connector.power_w for connector in self.connectors.values())

    async def _show_station_meter(self) -> None:
        if self.station_meter is None:
            return
        power = self._station_power_w()
        phase_w, phase_a = power / AC_PHASES, power / (AC_PHASES * AC_VOLTAGE_V)
        await self.station_meter.show(self.servers, MeterSnapshot(
            self.station_energy_wh, power, AC_VOLTAGE_V, phase_a, energy_export_wh=0.0,
            power_l1_w=phase_w, power_l2_w=phase_w, power_l3_w=phase_w, voltage_l2_v=AC_VOLTAGE_V,
            voltage_l3_v=AC_VOLTAGE_V, current_l2_a=phase_a, current_l3_a=phase_a, frequency_hz=50.0,
            power_factor=1.0))

    def _attach_controller(self, connector: SimConnector) -> None:
        """Connect the controller to its device on the bus (workers/sim/devices.py
        `controller_device`) and to the device's wire switch (offline, wire faults)."""
        ref, controller = connector.config.controller, connector.controller
        bus = self.buses[ref.bus]
        port = port_of(bus.devices[ref.device_id])
        if port is not None and port.controller is not controller:
            port.attach(controller)
            controller.use_wire_switch(bus.switches.get(ref.device_id))

    def _meter_view(self, connector: SimConnector, contactor_closed: bool) -> MeterSnapshot:
        power = connector.power_w
        if connector.config.standard is Standard.TYPE2:  # balanced phases, 50 Hz grid, resistive load
            phase_w, phase_a = power / AC_PHASES, power / (AC_PHASES * AC_VOLTAGE_V)
            return MeterSnapshot(
                connector.energy_wh, power, AC_VOLTAGE_V, phase_a, energy_export_wh=0.0,
                power_l1_w=phase_w, power_l2_w=phase_w, power_l3_w=phase_w,
                voltage_l2_v=AC_VOLTAGE_V, voltage_l3_v=AC_VOLTAGE_V, current_l2_a=phase_a,
                current_l3_a=phase_a, frequency_hz=50.0, power_factor=1.0)
        session = connector.controller.view()
        volts = (session.present.voltage_v or 0.0) if session is not None and contactor_closed else 0.0
        return MeterSnapshot(connector.energy_wh, power, volts, power / volts if volts else 0.0,
                             energy_export_wh=0.0)

    def _server(self, ref: DeviceRef) -> ModbusTcpServer | ModbusSerialServer:
        return self.servers[ref.bus]


def _plan_buses(config: StationConfig, io: SimIoModule, imd: SimImd | None,
                meters: list[SimMeter]) -> dict[str, _BusDevices]:
    """Every configured Modbus device, grouped by bus; two devices on one id is a wiring error.
    (Mercury lines are not Modbus: each Mercury meter serves its own pty, workers/sim/meters.py.)"""
    buses = {name: _BusDevices(bus, {devices.ANY_DEVICE: devices.absent_devices()})
             for name, bus in config.buses.items() if isinstance(bus, ModbusTcpBus | ModbusRtuBus)}

    def add(ref: DeviceRef, device: SimDevice, what: str, name: str) -> None:
        bus = buses[ref.bus]
        if ref.device_id == devices.ANY_DEVICE or ref.device_id in bus.devices:
            raise SimConfigError(f"{what}: device id {ref.device_id} on bus {ref.bus!r} is "
                                 f"{'the broadcast id' if ref.device_id == 0 else 'used twice'}")
        bus.devices[ref.device_id] = device
        bus.switches[ref.device_id] = device_switch(name, serial=isinstance(bus.config, ModbusRtuBus))

    for device_id, device in io.devices().items():
        io_name = "io" if device_id == config.io_module.device_id else f"io{device_id}"
        add(DeviceRef(bus=config.io_module.bus, device_id=device_id), device, "io_module", io_name)
    if imd is not None:
        add(imd.config, imd.device(), "imd", "imd")
    for meter in meters:
        if meter.map is not None:
            add(meter.config, devices.meter_device(meter.config.device_id, meter.map), meter.name, meter.name)
    for c in config.connectors:
        add(c.controller, devices.controller_device(c.controller.device_id),
            f"connector {c.id} controller", f"controller{c.id}")
    return buses


async def _serve_tcp(name: str, bus: _BusDevices, config: ModbusTcpBus) -> ModbusTcpServer:
    """A Modbus TCP server for the bus; an offline device answers 0x0B, as behind a gateway."""
    address = (config.host, config.port)
    server = ModbusTcpServer(list(bus.devices.values()), address=address,
                             trace_packet=DeviceAnswers(bus.switches).trace_tcp)
    try:
        await server.serve_forever(background=True)
    except RuntimeError as error:  # pymodbus' way of saying bind() failed
        raise SimStartError(f"bus {name!r} cannot listen on {address[0]}:{address[1]}: "
                            f"{error}") from error
    log.info("Modbus TCP bus %s on %s:%d: device ids %s", name, config.host, config.port,
             sorted(bus.switches))
    return server


async def _serve_rtu(name: str, bus: _BusDevices) -> ModbusSerialServer:
    """The bus's RS485 line (workers/sim/rtu_line.py) with its devices' server at the far end."""
    assert isinstance(bus.config, ModbusRtuBus)
    rtu = SimulatedRtuBus(bus.config, list(bus.devices.values()), bus.switches)
    try:
        server = await rtu.start()
    except (LineLinkError, OSError, RuntimeError) as error:
        raise SimStartError(f"bus {name!r} cannot open its line at {bus.config.port}: {error}") from error
    bus.rtu = rtu
    log.info("Modbus RTU bus %s at %s (%d baud): device ids %s", name, bus.config.port,
             bus.config.baudrate, sorted(bus.switches))
    return server


def _sim_meter(config: StationConfig, name: str, meter: MeterConfig) -> SimMeter:
    try:
        return SimMeter.for_config(name, meter, config.buses[meter.bus])
    except SimMeterError as error:
        raise SimConfigError(str(error)) from error


def _load_energies(path: Path) -> dict[int, float]:
    """Meter registers saved by the last run; a missing or unreadable file starts fresh (logged)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {int(key): float(value) for key, value in raw.items() if float(value) >= 0}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError) as error:
        log.warning("simulated meter state %s unreadable (%s); meters start at %.0f Wh",
                    path, error, INITIAL_ENERGY_WH)
        return {}
