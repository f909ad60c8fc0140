"""The durable session log in the configurator: the timeline under each session, "Export
selected as CSV", and no way to delete a session or an event; the CSV format itself."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import ProtectedError
from django.test import Client

from tests.webapp.test_admin import operator  # noqa: F401  (the logged-in superuser)
from webapp.station import session_csv
from webapp.station.models import ChargingSession, SessionEvent

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def session(session_id: str, *, connector_id: int = 1, id_tag: str = "CARD1", hours: float = 0,
            running: bool = False) -> ChargingSession:
    started = START + timedelta(hours=hours)
    row = ChargingSession.objects.create(
        session_id=session_id, connector_id=connector_id, standard="CCS", id_tag=id_tag,
        started_at=started, meter_start_wh=1000.5, peak_power_w=50_125.0,
        **({} if running else {"stopped_at": started + timedelta(minutes=30, seconds=1.4),
                               "meter_stop_wh": 13_346.0, "energy_wh": 12_345.6, "stop_reason": "Local",
                               "stop_id_tag": id_tag}))
    SessionEvent.objects.create(session=row, at=started, kind=SessionEvent.Kind.STARTED,
                                detail=f"id tag {id_tag}", data={"id_tag": id_tag})
    SessionEvent.objects.create(session=row, at=started + timedelta(seconds=2.5),
                                kind=SessionEvent.Kind.LIMIT, detail="50.0 kW offered, \"was\" 0",
                                data={"offered_w": 50_000.0})
    return row


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def export(selection: session_csv.SessionFilter) -> list[dict[str, str]]:
    sink = io.StringIO()
    session_csv.write_sessions(sink, session_csv.select_sessions(selection))
    return rows(sink.getvalue())


def test_a_session_row_has_utc_times_duration_and_energy_in_wh_and_kwh() -> None:
    session("s1", id_tag="CARD,\"ONE\"")
    session("s2", hours=1, running=True)

    first, running = export(session_csv.SessionFilter())

    assert first == {
        "session_id": "s1", "connector_id": "1", "standard": "CCS", "id_tag": "CARD,\"ONE\"",
        "started_at": "2026-03-01T10:00:00.000Z", "stopped_at": "2026-03-01T10:30:01.400Z",
        "duration_s": "1801", "meter_start_wh": "1000.5", "meter_stop_wh": "13346.0",
        "energy_wh": "12345.6", "energy_kwh": "12.346", "peak_power_w": "50125", "peak_power_kw": "50.125",
        "stop_reason": "Local", "stop_id_tag": "CARD,\"ONE\"",
    }
    assert (running["stopped_at"], running["duration_s"], running["meter_stop_wh"]) == ("", "", "")


def test_a_tag_with_a_comma_is_quoted_as_one_field() -> None:
    session("s1", id_tag="ACME,42")
    sink = io.StringIO()
    session_csv.write_sessions(sink, ChargingSession.objects.all())
    line = sink.getvalue().splitlines()[1]
    assert line.startswith('s1,1,CCS,"ACME,42",2026-03-01T10:00:00.000Z,')


def test_filters_take_sessions_started_in_the_range_on_one_connector() -> None:
    session("early", hours=-1)
    session("inside", hours=0)
    session("other-connector", connector_id=2, hours=0.5)
    session("at-until", hours=2)

    selection = session_csv.SessionFilter(since=START, until=START + timedelta(hours=2))
    assert [row["session_id"] for row in export(selection)] == ["inside", "other-connector"]
    one = session_csv.SessionFilter(since=START, until=START + timedelta(hours=2), connector_id=1)
    assert [row["session_id"] for row in export(one)] == ["inside"]


def test_an_empty_range_gives_the_header_only() -> None:
    session("s1")
    sink = io.StringIO()
    count = session_csv.write_sessions(sink, session_csv.select_sessions(
        session_csv.SessionFilter(since=START + timedelta(days=1))))
    assert count == 0
    assert sink.getvalue() == ",".join(session_csv.SESSION_COLUMNS) + "\r\n"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"since": START, "until": START}, "since (2026-03-01T10:00:00.000Z) must be before until"),
    ({"since": datetime(2026, 3, 1)}, "since must carry a time zone"),
    ({"connector_id": 0}, "connector must be 1 or more"),
])
def test_a_bad_filter_is_refused_with_the_reason(kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        session_csv.SessionFilter(**kwargs)


def test_the_events_csv_has_one_row_per_event_with_its_offset_and_json_data() -> None:
    session("s1")
    sink = io.StringIO()
    count = session_csv.write_events(sink, ChargingSession.objects.all())

    assert count == 2
    started, limit = rows(sink.getvalue())
    assert (started["kind"], started["offset_s"]) == ("started", "0.000")
    assert started["at"] == "2026-03-01T10:00:00.000Z"
    assert limit["detail"] == "50.0 kW offered, \"was\" 0"
    assert (limit["offset_s"], limit["data"]) == ("2.500", '{"offered_w":50000.0}')


def test_export_selected_as_csv_downloads_the_chosen_sessions(operator: Client) -> None:  # noqa: F811
    chosen = [session("s1", id_tag="ACME,42"), session("s3", hours=2)]
    session("s2", hours=1)

    response = operator.post("/admin/station/chargingsession/", {
        "action": "export_csv", "_selected_action": [row.pk for row in chosen]})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="sessions-')
    exported = rows(response.content.decode())
    assert [(row["session_id"], row["id_tag"]) for row in exported] == [("s1", "ACME,42"), ("s3", "CARD1")]


def test_the_session_page_shows_its_timeline_read_only(operator: Client) -> None:  # noqa: F811
    row = session("s1")
    page = operator.get(f"/admin/station/chargingsession/{row.pk}/change/").content.decode()

    assert "50.0 kW offered" in page and "session started" in page
    assert 'name="events-0-detail"' not in page  # shown, not editable
    assert "events-0-DELETE" not in page


def test_no_delete_for_sessions_or_events_not_even_as_a_bulk_action(operator: Client) -> None:  # noqa: F811
    row = session("s1")
    event = row.events.first()
    changelist = operator.get("/admin/station/chargingsession/").content.decode()
    assert "Export selected as CSV" in changelist and "delete_selected" not in changelist
    assert "delete_selected" not in operator.get("/admin/station/sessionevent/").content.decode()

    assert operator.get(f"/admin/station/chargingsession/{row.pk}/delete/").status_code == 403
    assert operator.get(f"/admin/station/sessionevent/{event.pk}/delete/").status_code == 403
    assert operator.get("/admin/station/sessionevent/add/").status_code == 403
    assert operator.post(f"/admin/station/sessionevent/{event.pk}/change/",
                         {"detail": "edited"}).status_code == 403
    for url, pk in (("/admin/station/chargingsession/", row.pk), ("/admin/station/sessionevent/", event.pk)):
        operator.post(url, {"action": "delete_selected", "_selected_action": [pk], "post": "yes"})

    assert ChargingSession.objects.count() == 1 and SessionEvent.objects.count() == 2
    event.refresh_from_db()
    assert event.detail == "id tag CARD1"


def test_the_database_refuses_to_delete_a_session_that_has_a_timeline() -> None:
    row = session("s1")
    with pytest.raises(ProtectedError):
        row.delete()
