"""Read the (simulated) devices over their wire protocol, as a technician's tool would: the
ground truth tests compare the station's reports against."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workers.common.station_config import load_station_config
from workers.drivers.io_module import IoModule
from workers.drivers.meter import MeterDriver
from workers.drivers.modbus_hub import open_hubs


@dataclass(frozen=True)
class ConnectorHardware:
    contactor_closed: bool
    meter_energy_wh: float
    meter_power_w: float


async def read_connector_hardware(config_path: Path, connector_id: int) -> ConnectorHardware:
    """The contactor coil and the meter of one connector, read over Modbus."""
    config = load_station_config(config_path, data_dir=config_path.parent)
    hubs = open_hubs(config)
    try:
        io = IoModule.from_config(config, hubs)
        connector = config.connector(connector_id)
        closed = (await io.read_coils(connector.contactor_coil))[0]
        meter = connector.meter
        snapshot = await MeterDriver(hubs[meter.bus], meter.device_id, meter.model).poll()
        return ConnectorHardware(closed, snapshot.energy_wh, snapshot.power_w)
    finally:
        for hub in hubs.values():
            await hub.close()
