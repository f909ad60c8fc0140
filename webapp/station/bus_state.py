"""Read the station's state from the bus into the typed views of `hmi_messages`.

One reader for the HMI websocket and `manage.py status`, so both show the same thing.
Which connectors exist comes from station.toml (a connector smartw never wrote is shown as
"Unknown", not left out).
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any, TypeVar

from pydantic import ValidationError

from bus import Bus, contract
from bus.contract import KeySpec
from bus.messages import ConnectorState
from webapp.station.hmi_messages import ConnectorView, SnapshotPayload, StationView
from workers.common.station_config import ConnectorConfig, StationConfig, load_from_settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@cache
def station_config() -> StationConfig:
    """station.toml, read once per process (it changes only with a restart)."""
    return load_from_settings()


async def _get(bus: Bus, spec: KeySpec[T], **params: Any) -> T | None:
    """A key's value; one that does not validate (a writer's bug) is logged and shown as
    unknown, so one bad key cannot blank the whole screen or the status report."""
    try:
        return await bus.get(spec, **params)
    except ValidationError as error:
        log.error("bus key %s %s holds an invalid value, shown as unknown: %s",
                  spec.pattern, params or "", error)
        return None


async def read_station(bus: Bus) -> StationView:
    state = await _get(bus, contract.STATION)
    link = await _get(bus, contract.OCPP_LINK)
    return StationView.from_bus(state, link)


async def read_connector(bus: Bus, config: ConnectorConfig,
                         state: ConnectorState | None = None) -> ConnectorView:
    """The connector's view; `state` given = a change just read from the stream."""
    if state is None:
        state = await _get(bus, contract.CONNECTOR, connector_id=config.id)
    transaction = await _get(bus, contract.OCPP_TRANSACTION, connector_id=config.id)
    return ConnectorView.from_bus(config, state, transaction)


async def read_snapshot(bus: Bus, config: StationConfig) -> SnapshotPayload:
    connectors = [await read_connector(bus, connector) for connector in config.connectors]
    return SnapshotPayload(station=await read_station(bus), connectors=connectors)
