"""What diag checks and keeps, read once at start-up (STYLE habit 12): the meters of
station.toml with their poll periods, every device it wires with the service that polls it,
and the log-rotation limit from the environment. A bad value stops start-up with a message
naming it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from webapp.env import EnvError
from workers.common.station_config import StationConfig, load_from_settings

STALE_AFTER_POLLS = 3  # a meter reading older than this many poll periods is stale
LOG_FILES_ENV = "DIAG_LOG_FILES_PER_TYPE"
DEFAULT_LOG_FILES_PER_TYPE = 10


@dataclass(frozen=True)
class MeterExpectation:
    """A meter counters must keep publishing: `name` is its contract.METER key parameter."""

    name: str
    poll_s: float

    @property
    def max_age_s(self) -> float:
        return STALE_AFTER_POLLS * self.poll_s


@dataclass(frozen=True)
class DeviceExpectation:
    """A device whose availability its owner publishes: `name` is its contract.DEVICE key
    parameter (DeviceState.device), `owner` the service polling it, whose heartbeat vouches
    that the key is kept current (the key has no TTL: it outlives a dead owner)."""

    name: str
    owner: str


@dataclass(frozen=True)
class DiagConfig:
    meters: tuple[MeterExpectation, ...]
    logs_dir: Path
    log_files_per_type: int
    devices: tuple[DeviceExpectation, ...] = ()

    @classmethod
    def load(cls) -> DiagConfig:
        """From Django settings (STATION_ENV), station.toml and the environment."""
        from django.conf import settings

        return cls.from_parts(load_from_settings(), os.environ, settings.STATION_ENV.logs_dir)

    @classmethod
    def from_parts(cls, station: StationConfig, environ: Mapping[str, str], logs_dir: Path) -> DiagConfig:
        return cls(meters=expected_meters(station), devices=expected_devices(station), logs_dir=logs_dir,
                   log_files_per_type=log_files_per_type(environ))


def expected_meters(station: StationConfig) -> tuple[MeterExpectation, ...]:
    """One per connector, and the grid meter when station.toml has one."""
    meters = [MeterExpectation(f"connector{connector.id}", connector.meter.poll_s)
              for connector in station.connectors]
    if station.station.meter is not None:
        meters.append(MeterExpectation("station", station.station.meter.poll_s))
    return tuple(meters)


def expected_devices(station: StationConfig) -> tuple[DeviceExpectation, ...]:
    """Every device station.toml wires, named as its owner publishes it (see DeviceState.device:
    counters' meters, smartw's controllers, IO module, IMD and power modules, rfid's reader)."""
    modules = station.power_modules.module_names() if station.power_modules is not None else ()
    by_owner: tuple[tuple[str, Sequence[str]], ...] = (
        ("counters", [f"meter:{meter.name}" for meter in expected_meters(station)]),
        ("smartw", [f"controller:{connector.id}" for connector in station.connectors]),
        ("smartw", ["io"]),
        ("smartw", ["imd"] if station.imd is not None else []),
        ("smartw", modules),
        ("rfid", ["rfid"]),
    )
    return tuple(DeviceExpectation(name, owner) for owner, names in by_owner for name in names)


def log_files_per_type(environ: Mapping[str, str]) -> int:
    text = environ.get(LOG_FILES_ENV, str(DEFAULT_LOG_FILES_PER_TYPE)).strip()
    if not text.isdigit() or int(text) < 1:
        raise EnvError(f"{LOG_FILES_ENV} must be a whole number of files, at least 1; got {text!r}")
    return int(text)
