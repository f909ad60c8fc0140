"""Read endpoints of the station's live state, from the bus: /status, /connectors, /meters.

The same readers as the HMI and `manage.py status` (webapp.station.bus_state), so the three
never disagree; which connectors and meters exist comes from station.toml. Each request opens
its own Bus and closes it; a Redis that does not answer is 503 (errors.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from django.http import HttpRequest
from ninja import Path, Router
from ninja.errors import HttpError

from bus import Bus, contract
from bus.client import KeyRead
from bus.messages import DeviceState, MeterReading, utcnow
from webapp.api.auth import viewer_auth
from webapp.api.schemas import ConnectorOut, ErrorOut, MeterOut, StationOut, StatusOut, ValidationErrorOut
from webapp.station.bus_state import read_connector, read_snapshot, station_config
from webapp.station.hmi_messages import ConnectorView
from workers.common.station_config import ConnectorConfig, MeterConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

ORIGIN = "web"
METER_STALE_AFTER_POLLS = 3  # contract.METER: a reading is stale after 3 poll periods
READ_ERRORS = {401: ErrorOut, 403: ErrorOut, 503: ErrorOut}

router = Router(auth=viewer_auth, tags=["station"])


@asynccontextmanager
async def _bus() -> AsyncIterator[Bus]:
    bus = Bus(ORIGIN)
    try:
        yield bus
    finally:
        await bus.close()


def known_connector(connector_id: int) -> ConnectorConfig:
    """The connector's wiring; 404 for an id station.toml does not have."""
    connectors = station_config().connectors
    for connector in connectors:
        if connector.id == connector_id:
            return connector
    known = [connector.id for connector in connectors]
    raise HttpError(404, f"no connector {connector_id} (this station has {known})")


CONNECTOR_ID = Path(..., ge=1, description="connector id (OCPP connectorId) as in station.toml")


@router.get("/status", response={200: StatusOut, **READ_ERRORS}, summary="The station and every connector")
async def status(request: HttpRequest) -> StatusOut:
    """What `manage.py status --json` prints, with more of each connector's state."""
    async with _bus() as bus:
        snapshot = await read_snapshot(bus, station_config())
    return StatusOut(station=StationOut.model_validate(snapshot.station.model_dump()),
                     connectors=[connector_out(view) for view in snapshot.connectors],
                     server_time=snapshot.server_time)


@router.get("/connectors", response={200: list[ConnectorOut], **READ_ERRORS}, summary="Every connector")
async def connectors(request: HttpRequest) -> list[ConnectorOut]:
    async with _bus() as bus:
        return [connector_out(await read_connector(bus, config)) for config in station_config().connectors]


@router.get("/connectors/{connector_id}",
            response={200: ConnectorOut, 404: ErrorOut, 422: ValidationErrorOut, **READ_ERRORS},
            summary="One connector")
async def connector(request: HttpRequest, connector_id: int = CONNECTOR_ID) -> ConnectorOut:
    config = known_connector(connector_id)
    async with _bus() as bus:
        return connector_out(await read_connector(bus, config))


@router.get("/meters", response={200: list[MeterOut], **READ_ERRORS}, summary="Latest reading of every meter")
async def meters(request: HttpRequest) -> list[MeterOut]:
    """Each connector's meter, then the station (grid) meter when station.toml has one."""
    config = station_config()
    wired: list[tuple[str, int | None, MeterConfig]] = [
        (f"connector{connector.id}", connector.id, connector.meter) for connector in config.connectors]
    if config.station.meter is not None:
        wired.append(("station", None, config.station.meter))
    async with _bus() as bus:
        readings = await bus.get_many([(contract.METER, {"meter": name}) for name, _, _ in wired])
        devices = await bus.get_many([(contract.DEVICE, {"device": f"meter:{name}"}) for name, _, _ in wired])
    return [meter_out(name, connector_id, meter, _valid(reading), _valid(device))
            for (name, connector_id, meter), reading, device in zip(wired, readings, devices, strict=True)]


def connector_out(view: ConnectorView) -> ConnectorOut:
    return ConnectorOut(
        id=view.id, standard=view.standard, max_power_kw=view.max_power_kw, status=view.status,
        error_code=view.error_code, info=view.info, plugged=view.plugged, awaiting_card=view.awaiting_card,
        power_w=view.power_w, energy_wh=view.session_energy_wh, soc=view.soc, target_soc=view.target_soc,
        session_id=view.session_id, session_started_at=view.session_started_at,
        transaction_id=view.transaction_id, updated_at=view.at,
    )


def _valid(read: KeyRead[T]) -> T | None:
    """The key's value; one that does not validate (a writer's bug) is logged and shown as
    absent, never as a number nobody can trust."""
    if read.error is not None:
        log.error("bus key %s holds an invalid value, shown as absent: %s", read.name, read.error)
    return read.value


def meter_out(name: str, connector_id: int | None, meter: MeterConfig, reading: MeterReading | None,
              device: DeviceState | None) -> MeterOut:
    age_s = None if reading is None else max(0.0, (utcnow() - reading.at).total_seconds())
    stale = age_s is None or age_s > METER_STALE_AFTER_POLLS * meter.poll_s
    return MeterOut(name=name, connector_id=connector_id, model=meter.model, poll_s=meter.poll_s,
                    available=None if device is None else device.available, reading=reading,
                    age_s=None if age_s is None else round(age_s, 3), stale=stale)
