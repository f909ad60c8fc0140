"""Checks of station.toml that need the drivers' knowledge, run before any service starts.

station_config.py checks the file's shape; only the drivers know which meter models exist,
which speak Mercury's protocol and which controller model can drive which connector. Doing
these checks in `chargepoint` makes a wrong model a configuration error (exit code 2, the
file and field named) instead of a service that crashes and is restarted forever.
"""

from __future__ import annotations

from pathlib import Path

from workers.common.station_config import ConfigError, MercuryBus, MeterConfig, StationConfig
from workers.drivers.controllers import ControllerConfigError
from workers.drivers.controllers.registry import controller_model
from workers.drivers.meter_factory import MERCURY_MODELS
from workers.drivers.meter_maps import UnknownMeterModel, meter_map


def check_wiring(config: StationConfig, source: str | Path = "station.toml") -> None:
    """ConfigError naming the file (`source`) and the first device whose model or bus does not fit."""
    try:
        _check(config)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from error


def _check(config: StationConfig) -> None:
    meters = [(f"connectors[{index}].meter", c.meter) for index, c in enumerate(config.connectors)]
    if config.station.meter is not None:
        meters.append(("station.meter", config.station.meter))
    for where, meter in meters:
        _check_meter(config, where, meter)
    modbus_devices = [("io_module", config.io_module.bus)]
    if config.imd is not None:
        modbus_devices.append(("imd", config.imd.bus))
    for index, connector in enumerate(config.connectors):
        modbus_devices.append((f"connectors[{index}].controller", connector.controller.bus))
        try:
            controller_model(connector)
        except ControllerConfigError as error:
            raise ConfigError(f"connectors[{index}].controller: {error}") from error
    for where, bus in modbus_devices:
        if isinstance(config.buses[bus], MercuryBus):
            raise ConfigError(f"{where}.bus: {bus!r} is a Mercury meter line, not a Modbus bus")


def _check_meter(config: StationConfig, where: str, meter: MeterConfig) -> None:
    on_mercury_line = isinstance(config.buses[meter.bus], MercuryBus)
    if meter.model in MERCURY_MODELS:
        if not on_mercury_line:
            raise ConfigError(f"{where}.bus: model {meter.model} speaks Mercury's protocol; bus "
                              f"{meter.bus!r} must be kind = \"mercury\"")
        return
    if on_mercury_line:
        raise ConfigError(f"{where}.model: bus {meter.bus!r} is a Mercury line; its meters are "
                          f"{' or '.join(sorted(MERCURY_MODELS))}, not {meter.model!r}")
    if meter.password is not None:
        raise ConfigError(f"{where}.password: applies to Mercury meters only")
    try:
        meter_map(meter.model)
    except UnknownMeterModel as error:
        raise ConfigError(f"{where}.model: {error.args[0]}") from error
