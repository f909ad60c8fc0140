"""The simulated station's energy meters, whatever wire they speak.

A meter of station.toml is either a Modbus register map (served by the bus's pymodbus server,
workers/sim/devices.py `meter_device`) or an Incotex Mercury on its own serial line
(workers/sim/mercury_port.py). `SimMeter.show(snapshot)` puts a reading on the meter's wire in
its own format, so the simulator's physics never cares which model a connector has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from workers.common.station_config import BusConfig, MercuryBus, MeterConfig
from workers.drivers.mercury import parse_password
from workers.drivers.meter import MeterSnapshot, encode_quantities, scale_by_ct
from workers.drivers.meter_factory import MERCURY_MODELS
from workers.drivers.meter_maps import MeterMap, UnknownMeterModel, meter_map
from workers.sim.mercury_port import SimulatedMercury

log = logging.getLogger(__name__)


class SimMeterError(ValueError):
    """station.toml names a meter the simulator cannot serve (unknown model, wrong bus kind)."""


@dataclass
class SimMeter:
    """One meter: `map` for a Modbus model, `mercury` for a Mercury on its own line."""

    name: str  # as `sim list` shows it: 'meter1', 'meter_station'
    config: MeterConfig
    map: MeterMap | None = None
    mercury: SimulatedMercury | None = None
    overflowing: bool = False  # the last reading did not fit the meter's registers (logged once)

    @classmethod
    def for_config(cls, name: str, config: MeterConfig, bus: BusConfig) -> SimMeter:
        if config.model in MERCURY_MODELS:
            if not isinstance(bus, MercuryBus):
                raise SimMeterError(f"{name}: model {config.model} needs a bus of kind \"mercury\"")
            password = parse_password(config.password)
            return cls(name, config, mercury=SimulatedMercury(name, Path(bus.port), config.device_id,
                                                              password=password))
        if isinstance(bus, MercuryBus):
            raise SimMeterError(f"{name}: bus {config.bus!r} is a Mercury line, not for {config.model}")
        try:
            return cls(name, config, map=meter_map(config.model))
        except UnknownMeterModel as error:
            raise SimMeterError(f"{name}: {error.args[0]}") from error

    def open(self) -> None:
        if self.mercury is not None:
            self.mercury.open()

    def close(self) -> None:
        if self.mercury is not None:
            self.mercury.close()

    async def show(self, servers: dict[str, ModbusTcpServer | ModbusSerialServer],
                   snapshot: MeterSnapshot) -> None:
        """Show the primary `snapshot`; a CT-connected meter sees it divided by `ct_ratio`."""
        snapshot = scale_by_ct(snapshot, 1 / self.config.ct_ratio)
        if self.mercury is not None:
            try:
                self.mercury.set_reading(snapshot)
            except ValueError as error:  # beyond its 3-byte fields: a real meter would saturate
                if not self.overflowing:
                    log.warning("%s cannot show %s W: %s (set ct_ratio in station.toml)", self.name,
                                snapshot.power_w, error)
                self.overflowing = True
            else:
                self.overflowing = False
            return
        assert self.map is not None
        server = servers[self.config.bus]
        for write in encode_quantities(self.map, snapshot):
            await server.async_setValues(self.config.device_id, write.table, write.address, write.words)
