"""station.toml: the station's wiring (connectors, meters, IO module, RFID reader, buses).

Parsed once at start-up into frozen typed models; an invalid file or a missing field stops
start-up with a message naming the field (STYLE habit 12). `{run_dir}` and `{data_dir}` in
port paths expand to folders under STATION_DATA_DIR (the simulator puts its serial links there).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bus.enums import Standard


class ConfigError(ValueError):
    """station.toml cannot be used; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModbusTcpBus(_Model):
    kind: Literal["modbus_tcp"]
    host: str
    port: int = Field(gt=0, lt=65536)
    timeout_s: float = Field(default=1.0, gt=0)


class ModbusRtuBus(_Model):
    kind: Literal["modbus_rtu"]
    port: str
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: float = Field(default=0.5, gt=0)
    inter_frame_delay_s: float = Field(default=0.005, ge=0)


BusConfig = Annotated[ModbusTcpBus | ModbusRtuBus, Field(discriminator="kind")]


class DeviceRef(_Model):
    """A device on a bus: which bus, which Modbus device id."""

    bus: str
    device_id: int = Field(ge=0, le=247)


class MeterConfig(DeviceRef):
    model: str = Field(description="register map name under workers/drivers/meter_maps/")
    poll_s: float = Field(default=1.0, gt=0)


class ControllerConfig(DeviceRef):
    model: str = "station_controller"
    poll_s: float = Field(default=0.25, gt=0)


class ConnectorConfig(_Model):
    id: int = Field(ge=1)
    standard: Standard
    max_power_kw: float = Field(gt=0)
    contactor_coil: int = Field(ge=0, description="IO module coil that closes this connector's contactor")
    meter: MeterConfig
    controller: ControllerConfig

    @property
    def is_dc(self) -> bool:
        return self.standard is not Standard.TYPE2


class IoModuleConfig(DeviceRef):
    poll_s: float = Field(default=0.2, gt=0)
    estop_input: int = Field(ge=0, description="discrete input that reads 1 while e-stop is pressed")


class RfidConfig(_Model):
    driver: Literal["em4100"] = "em4100"
    port: str
    baudrate: int = 9600


class StationSection(_Model):
    name: str = "station"
    max_power_kw: float = Field(gt=0, description="grid connection limit, kW")
    meter: MeterConfig | None = Field(default=None, description="optional meter at the grid connection")


class StationConfig(_Model):
    station: StationSection
    buses: dict[str, BusConfig]
    io_module: IoModuleConfig
    rfid: RfidConfig
    connectors: list[ConnectorConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_references(self) -> StationConfig:
        ids = [c.id for c in self.connectors]
        if len(set(ids)) != len(ids):
            raise ValueError(f"connector ids must be unique, got {ids}")
        refs = [("io_module", self.io_module.bus)]
        if self.station.meter is not None:
            refs.append(("station.meter", self.station.meter.bus))
        for index, connector in enumerate(self.connectors):
            refs.append((f"connectors[{index}].meter", connector.meter.bus))
            refs.append((f"connectors[{index}].controller", connector.controller.bus))
        for where, bus in refs:
            if bus not in self.buses:
                raise ValueError(f"{where}.bus names unknown bus {bus!r} (known: {sorted(self.buses)})")
        return self

    def connector(self, connector_id: int) -> ConnectorConfig:
        for connector in self.connectors:
            if connector.id == connector_id:
                return connector
        raise KeyError(connector_id)


def load_station_config(path: Path, *, data_dir: Path) -> StationConfig:
    """Read and check station.toml; raise ConfigError naming the file and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read station config: {error.strerror}") from error
    text = text.replace("{run_dir}", str(data_dir / "run")).replace("{data_dir}", str(data_dir))
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from error
    try:
        return StationConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {_describe(error)}") from error


def _describe(error: ValidationError) -> str:
    parts = []
    for problem in error.errors():
        location = ""
        for item in problem["loc"]:
            location += f"[{item}]" if isinstance(item, int) else (f".{item}" if location else str(item))
        parts.append(f"{location or '(top)'}: {problem['msg']}")
    return "; ".join(parts)


def load_from_settings() -> StationConfig:
    """The station config named by STATION_CONFIG (Django settings must be ready)."""
    from django.conf import settings

    env = settings.STATION_ENV
    return load_station_config(env.station_config, data_dir=env.data_dir)
