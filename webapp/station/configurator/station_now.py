"""The station's present state as the pages need it, read from the bus in one place.

A key whose value breaks the contract (a writer's bug) counts as missing and is logged, so one
bad key cannot take a page down; a lost Redis is `None` from `read()`, which the pages show as
"the bus is unreachable" instead of failing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bus import Bus, contract
from bus.messages import ConnectorState, OcppLink, StationState
from bus.service import REDIS_ERRORS
from webapp.station.bus_state import read_key, station_config

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_DATA = "no data"
BUS_DOWN = "The bus (Redis) is unreachable: the station's state cannot be shown."


@dataclass(frozen=True)
class StationNow:
    station: StationState | None
    link: OcppLink | None
    connectors: dict[int, ConnectorState | None]  # every connector of station.toml, by id


async def read_now(bus: Bus) -> StationNow:
    connectors = {c.id: await read_key(bus, contract.CONNECTOR, connector_id=c.id)
                  for c in station_config().connectors}
    return StationNow(station=await read_key(bus, contract.STATION),
                      link=await read_key(bus, contract.OCPP_LINK), connectors=connectors)


async def read(reader: Callable[[Bus], Awaitable[T]]) -> T | None:
    """`reader`'s result on a bus of its own; None (logged) when Redis does not answer."""
    bus = Bus("web")
    try:
        return await reader(bus)
    except REDIS_ERRORS as error:
        log.error("configurator page without bus data (Redis: %s)", error)
        return None
    finally:
        await bus.close()
