"""Command endpoints (operator role): start, stop, availability, free mode.

Each one only translates: webapp.station.actions asks the service, checks the role again and
writes the AuditEntry (source "api"). The station's answer is the body; HTTP says whether there
was one: 200 when the station answered (Rejected too, with done=false), 503 when the service or
the bus did not answer, 404 for a connector station.toml does not have, 422 for bad input.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Router, Status

from bus.enums import ReplyError
from webapp.api.auth import operator_auth
from webapp.api.schemas import AvailabilityIn, ErrorOut, FreeModeIn, OutcomeOut, StartIn, ValidationErrorOut
from webapp.api.state import CONNECTOR_ID, known_connector
from webapp.station import actions
from webapp.station.actions import Actor, Outcome
from webapp.station.operator_models import AuditEntry

STATION_ID = 0  # OCPP connectorId of the whole station
NOT_ANSWERED = frozenset({"NotAnswered", "BusUnavailable", *(error.value for error in ReplyError)})
"""Outcome statuses that mean no answer came from the station (actions._ask)."""
RESPONSES = {200: OutcomeOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ValidationErrorOut,
             503: OutcomeOut}
WITH_BODY = {**RESPONSES, 400: ErrorOut}  # 400: the body is not JSON ("Cannot parse request body")

router = Router(auth=operator_auth, tags=["commands"])


async def _actor(request: HttpRequest) -> Actor:
    return await sync_to_async(Actor.operator)(request.auth, AuditEntry.Source.API)  # type: ignore[attr-defined]


def _answer(outcome: Outcome) -> Status:
    code = 503 if outcome.status in NOT_ANSWERED else 200
    return Status(code, OutcomeOut(done=outcome.done, status=outcome.status, detail=outcome.detail))


@router.post("/connectors/{connector_id}/start", response=WITH_BODY, summary="Start charging")
async def start(request: HttpRequest, body: StartIn | None = None,
                connector_id: int = CONNECTOR_ID) -> Status:
    """With an idTag the station authorises it like a card and starts; without one it waits for
    a card at the connector (in free mode it starts at once). The body may be left out."""
    known_connector(connector_id)
    id_tag = body.id_tag if body is not None else None
    return _answer(await actions.start_charging(await _actor(request), connector_id, id_tag))


@router.post("/connectors/{connector_id}/stop", response=RESPONSES, summary="Stop charging")
async def stop(request: HttpRequest, connector_id: int = CONNECTOR_ID) -> Status:
    """Stops the session on the connector (reason Remote), or cancels a start waiting for a card."""
    known_connector(connector_id)
    return _answer(await actions.stop_charging(await _actor(request), connector_id))


@router.post("/connectors/{connector_id}/availability", response=WITH_BODY,
             summary="Set a connector Operative or Inoperative")
async def connector_availability(request: HttpRequest, body: AvailabilityIn,
                                 connector_id: int = CONNECTOR_ID) -> Status:
    """Kept across restarts. Scheduled while a session runs there: the session goes on, the
    connector turns Unavailable when it ends."""
    known_connector(connector_id)
    return _answer(await actions.set_availability(await _actor(request), connector_id, body.operative))


@router.post("/station/availability", response=WITH_BODY,
             summary="Set the whole station (connector 0) Operative or Inoperative")
async def station_availability(request: HttpRequest, body: AvailabilityIn) -> Status:
    return _answer(await actions.set_availability(await _actor(request), STATION_ID, body.operative))


@router.post("/station/free-mode", response=WITH_BODY, summary="Switch free mode on or off")
async def free_mode(request: HttpRequest, body: FreeModeIn) -> Status:
    """In free mode a plugged EV starts charging at once with the configured idTag, without a card."""
    return _answer(await actions.set_free_mode(await _actor(request), body.enabled, body.id_tag))
