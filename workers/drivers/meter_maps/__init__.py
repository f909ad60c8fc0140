"""Meter models as register map files (data, not code), by the name station.toml uses.

Every `*.toml` in this folder is a shipped model (`sdm630.toml` is model "sdm630"). A station
adds its own models without touching the repository: the folder named by the environment
variable METER_MAPS_DIR (optional) is read too. Every file is loaded and checked at import, so
a broken file stops the service at start-up naming the file and field, and the registry is
frozen (STYLE habit 13): an unknown model name fails loudly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from workers.drivers.meter_maps.blocks import ReadBlock
from workers.drivers.meter_maps.schema import (
    MeterMap,
    MeterMapError,
    MeterRegister,
    Probe,
    Quantity,
    load_map_file,
)

__all__ = [
    "MAPS_DIR_ENV",
    "METER_MAPS",
    "SHIPPED_MAPS_DIR",
    "MeterMap",
    "MeterMapError",
    "MeterRegister",
    "Probe",
    "Quantity",
    "ReadBlock",
    "UnknownMeterModel",
    "load_meter_maps",
    "map_folders",
    "meter_map",
]

MAPS_DIR_ENV = "METER_MAPS_DIR"
SHIPPED_MAPS_DIR = Path(__file__).parent


class UnknownMeterModel(KeyError):
    """station.toml names a meter model that has no register map."""


def map_folders(environ: Mapping[str, str]) -> list[Path]:
    """The shipped maps, then the station's own folder if METER_MAPS_DIR names one."""
    extra = environ.get(MAPS_DIR_ENV, "").strip()
    if not extra:
        return [SHIPPED_MAPS_DIR]
    folder = Path(extra)
    if not folder.is_dir():
        raise MeterMapError(f"{MAPS_DIR_ENV}={extra}: not a folder")
    return [SHIPPED_MAPS_DIR, folder]


def load_meter_maps(folders: Sequence[Path]) -> MappingProxyType[str, MeterMap]:
    """Every map file of `folders`; a model defined twice is an error naming both files."""
    maps: dict[str, MeterMap] = {}
    files: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.toml")):
            meter = load_map_file(path)
            if meter.model in files:
                raise MeterMapError(f"{path}: model {meter.model!r} is already defined by "
                                    f"{files[meter.model]}")
            maps[meter.model], files[meter.model] = meter, path
    return MappingProxyType(maps)


METER_MAPS: MappingProxyType[str, MeterMap] = load_meter_maps(map_folders(os.environ))


def meter_map(model: str) -> MeterMap:
    try:
        return METER_MAPS[model]
    except KeyError:
        raise UnknownMeterModel(f"no register map for meter model {model!r} "
                                f"(known: {', '.join(sorted(METER_MAPS))})") from None
