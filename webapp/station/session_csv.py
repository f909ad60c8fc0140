"""Charging sessions and their timelines as CSV: one format for the configurator's "Export
selected as CSV" action and for `manage.py sessions export`, so the two never disagree.

Sessions: one row per session, columns SESSION_COLUMNS. Timeline: one row per SessionEvent,
columns EVENT_COLUMNS, joined to its session by `session_id`. Times are UTC ISO 8601 with a
`Z`; durations and offsets in seconds; energy in Wh and kWh, power in W and kW; a session still
running has empty stop columns. Quoting is the csv module's (RFC 4180: a field with a comma,
quote or line break is quoted), so an id tag with a comma stays one field.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from django.db.models import QuerySet

from webapp.station.models import ChargingSession, SessionEvent

SESSION_COLUMNS = (
    "session_id", "connector_id", "standard", "id_tag", "started_at", "stopped_at", "duration_s",
    "meter_start_wh", "meter_stop_wh", "energy_wh", "energy_kwh", "peak_power_w", "peak_power_kw",
    "stop_reason", "stop_id_tag",
)
EVENT_COLUMNS = ("session_id", "connector_id", "at", "offset_s", "kind", "detail", "data")


class TextSink(Protocol):
    def write(self, text: str, /) -> Any: ...


@dataclass(frozen=True)
class SessionFilter:
    """Which sessions to export: started in [since, until), on one connector or all."""

    since: datetime | None = None
    until: datetime | None = None
    connector_id: int | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"{name} must carry a time zone")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(f"since ({utc_text(self.since)}) must be before until ({utc_text(self.until)})")
        if self.connector_id is not None and self.connector_id < 1:
            raise ValueError(f"connector must be 1 or more, got {self.connector_id}")


def select_sessions(selection: SessionFilter) -> QuerySet[ChargingSession]:
    sessions = ChargingSession.objects.all()
    if selection.since is not None:
        sessions = sessions.filter(started_at__gte=selection.since)
    if selection.until is not None:
        sessions = sessions.filter(started_at__lt=selection.until)
    if selection.connector_id is not None:
        sessions = sessions.filter(connector_id=selection.connector_id)
    return sessions.order_by("started_at", "pk")


def write_sessions(sink: TextSink, sessions: Iterable[ChargingSession]) -> int:
    """Header and one row per session; returns the number of sessions."""
    writer = csv.writer(sink)
    writer.writerow(SESSION_COLUMNS)
    count = 0
    for session in sessions:
        writer.writerow(session_row(session))
        count += 1
    return count


def write_events(sink: TextSink, sessions: QuerySet[ChargingSession]) -> int:
    """Header and one row per timeline event of `sessions`, session by session, in time order;
    returns the number of events."""
    writer = csv.writer(sink)
    writer.writerow(EVENT_COLUMNS)
    events = (SessionEvent.objects.filter(session__in=sessions).select_related("session")
              .order_by("session__started_at", "session_id", "at", "pk"))
    count = 0
    for event in events.iterator():
        writer.writerow(event_row(event))
        count += 1
    return count


def session_row(session: ChargingSession) -> list[str | int]:
    stopped = session.stopped_at
    return [
        session.session_id, session.connector_id, session.standard, session.id_tag,
        utc_text(session.started_at), utc_text(stopped) if stopped else "",
        round((stopped - session.started_at).total_seconds()) if stopped else "",
        _number(session.meter_start_wh, 1),
        _number(session.meter_stop_wh, 1) if session.meter_stop_wh is not None else "",
        _number(session.energy_wh, 1), _number(session.energy_wh / 1000, 3),
        _number(session.peak_power_w, 0), _number(session.peak_power_w / 1000, 3),
        session.stop_reason, session.stop_id_tag,
    ]


def event_row(event: SessionEvent) -> list[str | int]:
    session = event.session
    return [
        session.session_id, session.connector_id, utc_text(event.at),
        _number((event.at - session.started_at).total_seconds(), 3), event.kind, event.detail,
        json.dumps(event.data, sort_keys=True, separators=(",", ":")),
    ]


def utc_text(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`: 2026-03-01T10:00:00.000Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"
