"""Read endpoints of the charging sessions smartw logged: a page of them, one with its timeline,
and all of them as CSV.

The selection (from, to, connector) and the CSV format are session_csv's, so the API's file is
the configurator's export and `manage.py sessions export`'s, byte for byte; the API adds an
idTag filter. Lists are newest first; the CSV keeps the export's order (oldest first).
"""

from __future__ import annotations

import io

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from ninja import Path, Query, Router
from ninja.errors import HttpError

from webapp.api.auth import viewer_auth
from webapp.api.schemas import (
    ErrorOut,
    PageQuery,
    SessionDetailOut,
    SessionEventOut,
    SessionOut,
    SessionPage,
    SessionQuery,
    ValidationErrorOut,
)
from webapp.station.actions import InvalidInput
from webapp.station.models import ChargingSession, SessionEvent
from webapp.station.session_csv import SESSION_COLUMNS, SessionFilter, select_sessions, write_sessions

SESSION_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,32}$"  # smartw's are 32 hex digits
LIST_ERRORS = {401: ErrorOut, 403: ErrorOut, 422: ValidationErrorOut}
CSV_RESPONSE = {
    "200": {
        "description": f"one row per session, columns {', '.join(SESSION_COLUMNS)} (RFC 4180; times UTC "
                       "ISO 8601 with Z; energy in Wh and kWh, power in W and kW; empty stop columns "
                       "while a session runs)",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
}

router = Router(auth=viewer_auth, tags=["sessions"])


def selected(query: SessionQuery) -> QuerySet[ChargingSession]:
    if query.since is not None and query.until is not None and query.since >= query.until:
        raise InvalidInput("'from' must be before 'to'")
    sessions = select_sessions(SessionFilter(since=query.since, until=query.until,
                                             connector_id=query.connector))
    return sessions if query.id_tag is None else sessions.filter(id_tag=query.id_tag)


@router.get("/sessions", response={200: SessionPage, **LIST_ERRORS},
            summary="Charging sessions, newest first")
def sessions(request: HttpRequest, filters: Query[SessionQuery], page: Query[PageQuery]) -> SessionPage:
    chosen = selected(filters).order_by("-started_at", "-pk")
    rows = chosen[page.offset:page.offset + page.limit]
    return SessionPage(count=chosen.count(), limit=page.limit, offset=page.offset,
                       items=[session_out(row) for row in rows])


@router.get("/sessions.csv", response=LIST_ERRORS, openapi_extra={"responses": CSV_RESPONSE},
            summary="Charging sessions as CSV (the configurator's export format)")
def sessions_csv(request: HttpRequest, filters: Query[SessionQuery]) -> HttpResponse:
    text = io.StringIO()
    write_sessions(text, selected(filters).iterator())
    response = HttpResponse(text.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="sessions.csv"'
    return response


@router.get("/sessions/{session_id}", response={200: SessionDetailOut, 404: ErrorOut, **LIST_ERRORS},
            summary="One session with its timeline")
def session(request: HttpRequest,
            session_id: str = Path(..., pattern=SESSION_ID_PATTERN, description="smartw's session id")
            ) -> SessionDetailOut:
    row = ChargingSession.objects.filter(session_id=session_id).first()
    if row is None:
        raise HttpError(404, f"no session {session_id}")
    events = [event_out(row, event) for event in row.events.order_by("at", "pk")]
    return SessionDetailOut(**session_out(row).model_dump(), events=events)


def session_out(row: ChargingSession) -> SessionOut:
    stopped = row.stopped_at
    return SessionOut(
        session_id=row.session_id, connector_id=row.connector_id, standard=row.standard, id_tag=row.id_tag,
        parent_id_tag=row.parent_id_tag, reservation_id=row.reservation_id, started_at=row.started_at,
        stopped_at=stopped, running=stopped is None,
        duration_s=None if stopped is None else (stopped - row.started_at).total_seconds(),
        meter_start_wh=row.meter_start_wh, meter_stop_wh=row.meter_stop_wh, energy_wh=row.energy_wh,
        peak_power_w=row.peak_power_w, stop_reason=row.stop_reason, stop_id_tag=row.stop_id_tag,
    )


def event_out(row: ChargingSession, event: SessionEvent) -> SessionEventOut:
    return SessionEventOut(at=event.at, offset_s=(event.at - row.started_at).total_seconds(),
                           kind=event.kind, detail=event.detail, data=event.data)
