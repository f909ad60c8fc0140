"""Read the station's state from the bus into the typed views of `hmi_messages`.

One reader for the HMI websocket and `manage.py status`, so both show the same thing.
Which connectors exist comes from station.toml (a connector smartw never wrote is shown as
"Unknown", not left out).

The kiosk's settings (contract.HMI_SETTINGS) missing from the bus count as HmiSettings'
defaults: English, no QR codes, and Stop needing the session's card (the safe side).
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any, TypeVar

from django.conf import settings
from pydantic import ValidationError

from bus import Bus, contract
from bus.contract import KeySpec
from bus.messages import ConnectorState, HmiSettings
from webapp.station.hmi_messages import ConnectorView, KioskView, SnapshotPayload, StationView
from workers.common.station_config import ConnectorConfig, StationConfig, load_from_settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@cache
def station_config() -> StationConfig:
    """station.toml, read once per process (it changes only with a restart)."""
    return load_from_settings()


async def read_key(bus: Bus, spec: KeySpec[T], **params: Any) -> T | None:
    """A key's value; one that does not validate (a writer's bug) is logged and shown as
    unknown, so one bad key cannot blank the whole screen or the status report."""
    try:
        return await bus.get(spec, **params)
    except ValidationError as error:
        log.error("bus key %s %s holds an invalid value, shown as unknown: %s",
                  spec.pattern, params or "", error)
        return None


async def read_station(bus: Bus) -> StationView:
    state = await read_key(bus, contract.STATION)
    link = await read_key(bus, contract.OCPP_LINK)
    return StationView.from_bus(state, link)


async def read_connector(bus: Bus, config: ConnectorConfig,
                         state: ConnectorState | None = None) -> ConnectorView:
    """The connector's view; `state` given = a change just read from the stream."""
    if state is None:
        state = await read_key(bus, contract.CONNECTOR, connector_id=config.id)
    transaction = await read_key(bus, contract.OCPP_TRANSACTION, connector_id=config.id)
    return ConnectorView.from_bus(config, state, transaction)


async def read_snapshot(bus: Bus, config: StationConfig) -> SnapshotPayload:
    connectors = [await read_connector(bus, connector) for connector in config.connectors]
    return SnapshotPayload(station=await read_station(bus), connectors=connectors)


async def read_hmi_settings(bus: Bus) -> HmiSettings:
    return await read_key(bus, contract.HMI_SETTINGS) or HmiSettings()


async def read_charge_point_id(bus: Bus) -> str:
    """The identity the CSMS knows the station by, for the connector deep link: the one ocpp16
    connects as (OcppLink, so a ChargePointId changed in the configurator shows at once), or
    OCPP_CHARGE_POINT_ID while ocpp16 has not said."""
    link = await read_key(bus, contract.OCPP_LINK)
    return link.charge_point_id if link and link.charge_point_id else settings.STATION_ENV.charge_point_id


async def read_kiosk(bus: Bus, config: StationConfig) -> KioskView:
    return KioskView.from_settings(await read_hmi_settings(bus), [c.id for c in config.connectors],
                                   await read_charge_point_id(bus))


async def stop_needs_card(bus: Bus, connector_id: int) -> bool:
    """Whether a Stop pressed on the screen must be refused: the operator wants the session's
    card (HmiSettings.stop_needs_card), a session may be running there (its state says so or
    cannot be read), and the station is not in free mode (a free session has no card).
    With no session a Stop only cancels a start that waits for a card, which needs none."""
    if not (await read_hmi_settings(bus)).stop_needs_card:
        return False
    station = await read_key(bus, contract.STATION)
    if station is not None and station.free_mode:
        return False
    state = await read_key(bus, contract.CONNECTOR, connector_id=connector_id)
    return state is None or state.session_id is not None
