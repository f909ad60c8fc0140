"""The simulated station's hardware: Modbus servers with every configured device, and physics.

One pymodbus ModbusTcpServer per `modbus_tcp` bus of station.toml serves each device id
configured on it. `tick()` moves the world on: an EV draws power only while its connector's
contactor coil is on, its controller's `enable` is 1 and the e-stop is released (the e-stop
is wired into the contactor circuit, as on a real station), at min(power limit, EV max,
taper); meters integrate energy (monotonic, kept across simulator restarts in a small state
file) and controllers report the EV's state. The world is read from and written to the
servers' registers (`async_getValues`/`async_setValues`), so a driver sees only the wire.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimDevice

from bus.enums import Standard
from workers.common.station_config import ConnectorConfig, DeviceRef, ModbusTcpBus, StationConfig
from workers.drivers import controller
from workers.drivers.meter import MeterSnapshot, encode_quantities
from workers.drivers.meter_maps import MeterMap, UnknownMeterModel, meter_map
from workers.sim import devices
from workers.sim.ev import SimulatedEv

log = logging.getLogger(__name__)

AC_VOLTAGE_V = 230.0  # phase-to-neutral voltage the AC meters see
AC_PHASES = 3
INITIAL_ENERGY_WH = 100_000.0  # a meter that has been in service, so register != session energy
FC_COILS, FC_INPUTS, FC_HOLDING, FC_INPUT_REGS = 1, 2, 3, 4


class SimConfigError(ValueError):
    """station.toml describes wiring the simulator cannot serve."""


class SimStartError(RuntimeError):
    """A simulated bus cannot listen (its port is taken, e.g. by another simulator)."""


@dataclass
class SimConnector:
    config: ConnectorConfig
    meter_map: MeterMap
    energy_wh: float
    ev: SimulatedEv | None = None
    power_w: float = 0.0


@dataclass
class _BusDevices:
    config: ModbusTcpBus
    devices: dict[int, SimDevice] = field(default_factory=dict)


class SimStation:
    def __init__(self, config: StationConfig, state_path: Path) -> None:
        self.config = config
        self.state_path = state_path
        saved = _load_energies(state_path)
        self.connectors = {
            c.id: SimConnector(c, _meter_map(c), saved.get(c.id, INITIAL_ENERGY_WH))
            for c in config.connectors
        }
        self.buses = _plan_buses(config)
        self.servers: dict[str, ModbusTcpServer] = {}

    async def start(self) -> None:
        """Listen on every bus's port; the devices start idle (no EV, coils off, e-stop released)."""
        for name, bus in self.buses.items():
            address = (bus.config.host, bus.config.port)
            server = ModbusTcpServer(list(bus.devices.values()), address=address)
            try:
                await server.serve_forever(background=True)
            except RuntimeError as error:  # pymodbus' way of saying bind() failed
                raise SimStartError(f"bus {name!r} cannot listen on {address[0]}:{address[1]}: "
                                    f"{error}") from error
            self.servers[name] = server
            log.info("Modbus TCP bus %s on %s:%d: device ids %s", name, bus.config.host,
                     bus.config.port, sorted(i for i in bus.devices if i != devices.ANY_DEVICE))
        for connector in self.connectors.values():
            await self._show(connector, contactor_closed=False)

    async def stop(self) -> None:
        self.save()
        for server in self.servers.values():
            await server.shutdown()
        self.servers.clear()

    def save(self) -> None:
        """Keep the meters' registers for the next start (written atomically)."""
        data = {str(cid): c.energy_wh for cid, c in self.connectors.items()}
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data), encoding="utf-8")
        os.replace(temporary, self.state_path)

    # ---- what `manage.py sim` changes ---------------------------------------------

    def plug(self, connector_id: int, ev: SimulatedEv) -> None:
        self.connectors[connector_id].ev = ev

    def unplug(self, connector_id: int) -> None:
        self.connectors[connector_id].ev = None

    async def set_estop(self, pressed: bool) -> None:
        io = self.config.io_module
        await self._server(io).async_setValues(io.device_id, FC_INPUTS, io.estop_input, [pressed])

    # ---- physics -------------------------------------------------------------------

    async def tick(self, dt_s: float) -> None:
        io = self.config.io_module
        estop = bool((await self._server(io).async_getValues(io.device_id, FC_INPUTS, io.estop_input, 1))[0])
        for connector in self.connectors.values():
            await self._step(connector, dt_s, estop)

    async def _step(self, connector: SimConnector, dt_s: float, estop: bool) -> None:
        io, ctrl = self.config.io_module, connector.config.controller
        coil_address = connector.config.contactor_coil
        coil = await self._server(io).async_getValues(io.device_id, FC_COILS, coil_address, 1)
        enable, limit_hw = await self._server(ctrl).async_getValues(ctrl.device_id, FC_HOLDING, 0, 2)
        closed = bool(coil[0]) and not estop
        offered_w = float(limit_hw * controller.POWER_UNIT_W) if closed and enable == 1 else 0.0
        connector.power_w = connector.ev.charge(offered_w, dt_s) if connector.ev else 0.0
        connector.energy_wh += connector.power_w * dt_s / 3600.0
        await self._show(connector, contactor_closed=closed)

    async def _show(self, connector: SimConnector, *, contactor_closed: bool) -> None:
        """Write the connector's meter and controller registers from the model."""
        meter, ctrl = connector.config.meter, connector.config.controller
        meter_server, view = self._server(meter), self._meter_view(connector, contactor_closed)
        for register, words in encode_quantities(connector.meter_map, view):
            await meter_server.async_setValues(meter.device_id, register.table, register.address, words)
        inputs = _controller_inputs(connector)
        await self._server(ctrl).async_setValues(ctrl.device_id, FC_INPUT_REGS, 0, inputs)

    def _meter_view(self, connector: SimConnector, contactor_closed: bool) -> MeterSnapshot:
        power = connector.power_w
        if connector.config.standard is Standard.TYPE2:
            return MeterSnapshot(connector.energy_wh, power, AC_VOLTAGE_V, power / (AC_PHASES * AC_VOLTAGE_V))
        ev = connector.ev
        volts = ev.pack_voltage_v() if ev is not None and contactor_closed else 0.0
        return MeterSnapshot(connector.energy_wh, power, volts, power / volts if volts else 0.0)

    def _server(self, ref: DeviceRef) -> ModbusTcpServer:
        return self.servers[ref.bus]


def _controller_inputs(connector: SimConnector) -> list[int]:
    """Input registers 0..4 of docs/controller-protocol.md for the connector's EV (or none)."""
    ev = connector.ev
    if ev is None:
        return [controller.EvState.A.code, controller.UNKNOWN, controller.UNKNOWN, 0, 0]
    # AC (IEC 61851 PWM) carries no SoC; DC controllers learn it from the EV
    dc = connector.config.standard is not Standard.TYPE2
    soc = round(ev.soc) if dc else controller.UNKNOWN
    target = round(ev.target_soc) if dc else controller.UNKNOWN
    max_hw = min(int(ev.acceptance_w() // controller.POWER_UNIT_W), 0xFFFF)
    return [ev.state.code, soc, target, max_hw, 0]


def _plan_buses(config: StationConfig) -> dict[str, _BusDevices]:
    """Every configured device, grouped by bus; two devices on one id is a wiring error."""
    buses: dict[str, _BusDevices] = {}
    for name, bus in config.buses.items():
        if not isinstance(bus, ModbusTcpBus):
            raise SimConfigError(f"bus {name!r}: the simulator serves modbus_tcp buses only, not {bus.kind}")
        buses[name] = _BusDevices(bus, {devices.ANY_DEVICE: devices.absent_devices()})

    def add(ref: DeviceRef, device: SimDevice, what: str) -> None:
        if ref.device_id == devices.ANY_DEVICE or ref.device_id in buses[ref.bus].devices:
            raise SimConfigError(f"{what}: device id {ref.device_id} on bus {ref.bus!r} is "
                                 f"{'the broadcast id' if ref.device_id == 0 else 'used twice'}")
        buses[ref.bus].devices[ref.device_id] = device

    io = config.io_module
    highest_coil = max(c.contactor_coil for c in config.connectors)
    add(io, devices.io_device(io.device_id, highest_coil=highest_coil, highest_input=io.estop_input),
        "io_module")
    for c in config.connectors:
        add(c.meter, devices.meter_device(c.meter.device_id, _meter_map(c)), f"connector {c.id} meter")
        add(c.controller, devices.controller_device(c.controller.device_id), f"connector {c.id} controller")
    return buses


def _meter_map(connector: ConnectorConfig) -> MeterMap:
    try:
        return meter_map(connector.meter.model)
    except UnknownMeterModel as error:
        raise SimConfigError(f"connector {connector.id} meter: {error.args[0]}") from error


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
