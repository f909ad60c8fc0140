"""Meter models as register maps (data, not code), by the name station.toml uses (`meter.model`).

The registry is frozen at import (STYLE habit 13): an unknown model name fails loudly.
"""

from __future__ import annotations

from types import MappingProxyType

from workers.drivers.meter_maps import acudc243, sdm630
from workers.drivers.meter_maps.schema import MeterMap, MeterRegister, Quantity

__all__ = ["METER_MAPS", "MeterMap", "MeterRegister", "Quantity", "UnknownMeterModel", "meter_map"]

METER_MAPS: MappingProxyType[str, MeterMap] = MappingProxyType({
    meter.model: meter for meter in (sdm630.METER_MAP, acudc243.METER_MAP)
})


class UnknownMeterModel(KeyError):
    """station.toml names a meter model that has no register map."""


def meter_map(model: str) -> MeterMap:
    try:
        return METER_MAPS[model]
    except KeyError:
        raise UnknownMeterModel(f"no register map for meter model {model!r} "
                                f"(known: {', '.join(sorted(METER_MAPS))})") from None
