"""Charging sessions in the configurator: filters (connector, range of days, stop reason, idTag
search) and the CSV export of exactly the rows they select, for viewers too."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.test import Client

from tests.webapp.test_admin_roles import VIEWER, client_as, user_with_role
from webapp.station.models import ChargingSession

pytestmark = pytest.mark.django_db

LIST = "/admin/station/chargingsession/"
EXPORT = "/admin/station/chargingsession/export/"
HEADER = ("session_id,connector_id,standard,id_tag,started_at,stopped_at,duration_s,meter_start_wh,"
          "meter_stop_wh,energy_wh,energy_kwh,peak_power_w,peak_power_kw,stop_reason,stop_id_tag\r\n")


def add(session_id: str, connector_id: int, day: int, id_tag: str, reason: str, *,
        running: bool = False) -> ChargingSession:
    return ChargingSession.objects.create(
        session_id=session_id, connector_id=connector_id, standard="CCS" if connector_id == 1 else "Type2",
        id_tag=id_tag, started_at=datetime(2025, 3, day, 10, 0, tzinfo=UTC),
        stopped_at=None if running else datetime(2025, 3, day, 11, 30, 15, tzinfo=UTC),
        meter_start_wh=1000, meter_stop_wh=None if running else 13_346.0,
        energy_wh=0 if running else 12_346.0, peak_power_w=0 if running else 48_250,
        stop_reason="" if running else reason, stop_id_tag="")


@pytest.fixture
def viewer() -> Client:
    return client_as(user_with_role(VIEWER))


@pytest.fixture
def march() -> None:
    add("s-mar-01", 1, 1, "CARD,ONE", "Local")
    add("s-mar-05", 2, 5, "CARDTWO", "EVDisconnected")
    add("s-mar-09", 1, 9, "CARDTWO", "Remote")
    add("s-mar-10", 2, 10, "CARDTHREE", "", running=True)


def shown(client: Client, query: str) -> list[str]:
    response = client.get(LIST + query)
    assert response.status_code == 200
    page = response.content.decode()
    return [tag for tag in ("CARD,ONE", "CARDTWO", "CARDTHREE") if tag in page]


def exported(client: Client, query: str) -> list[str]:
    response = client.get(EXPORT + query)
    assert response.status_code == 200, response.content
    return [row["session_id"] for row in csv.DictReader(io.StringIO(response.content.decode()))]


@pytest.mark.parametrize(("query", "tags", "sessions"), [
    ("", ["CARD,ONE", "CARDTWO", "CARDTHREE"], ["s-mar-01", "s-mar-05", "s-mar-09", "s-mar-10"]),
    ("?connector_id=2", ["CARDTWO", "CARDTHREE"], ["s-mar-05", "s-mar-10"]),
    ("?started_at_from=2025-03-05&started_at_to=2025-03-09", ["CARDTWO"], ["s-mar-05", "s-mar-09"]),
    ("?started_at_from=2025-03-06", ["CARDTWO", "CARDTHREE"], ["s-mar-09", "s-mar-10"]),
    ("?started_at_to=2025-03-01", ["CARD,ONE"], ["s-mar-01"]),
    ("?stop_reason=Remote", ["CARDTWO"], ["s-mar-09"]),
    ("?q=cardtwo", ["CARDTWO"], ["s-mar-05", "s-mar-09"]),
    ("?q=CARDTWO&connector_id=1&started_at_from=2025-03-02", ["CARDTWO"], ["s-mar-09"]),
])
def test_filters_select_the_rows_and_the_export_takes_exactly_those(
        viewer: Client, march, query: str, tags: list[str], sessions: list[str]) -> None:
    assert shown(viewer, query) == tags
    assert exported(viewer, query + ("&" if query else "?") + "p=1") == sessions  # the page does not matter


def test_the_export_has_every_column_in_the_station_format(viewer: Client, march) -> None:
    response = viewer.get(EXPORT + "?started_at_to=2025-03-01")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="sessions-')
    assert response.content.decode() == HEADER + (
        's-mar-01,1,CCS,"CARD,ONE",2025-03-01T10:00:00.000Z,2025-03-01T11:30:15.000Z,5415,1000.0,13346.0,'
        "12346.0,12.346,48250,48.250,Local,\r\n")


def test_a_running_session_exports_with_empty_stop_columns(viewer: Client, march) -> None:
    response = viewer.get(EXPORT + "?q=CARDTHREE")

    assert response.content.decode() == HEADER + (
        "s-mar-10,2,Type2,CARDTHREE,2025-03-10T10:00:00.000Z,,,1000.0,,0.0,0.000,0,0.000,,\r\n")


def test_the_list_links_the_export_with_its_current_filters(viewer: Client, march) -> None:
    page = viewer.get(LIST + "?connector_id=2&q=CARD").content.decode()
    assert f'href="{EXPORT}?connector_id=2&amp;q=CARD"' in page


def test_the_export_action_takes_the_selected_rows(viewer: Client, march) -> None:
    chosen = ChargingSession.objects.filter(session_id__in=["s-mar-09", "s-mar-01"])
    response = viewer.post(LIST, {"action": "export_csv", "_selected_action": [row.pk for row in chosen]})

    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["session_id"] for row in rows] == ["s-mar-01", "s-mar-09"]


@pytest.mark.parametrize(("query", "error"), [
    ("?started_at_from=yesterday", "&#x27;from&#x27; must be a day as YYYY-MM-DD, got &#x27;yesterday&#x27;"),
    ("?started_at_from=2025-03-09&started_at_to=2025-03-01",
     "&#x27;to&#x27; (2025-03-01) is before &#x27;from&#x27; (2025-03-09)"),
])
def test_a_bad_range_is_said_and_shows_no_rows_and_exports_nothing(viewer: Client, march, query: str,
                                                                 error: str) -> None:
    response = viewer.get(LIST + query)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert shown(viewer, query) == []

    refused = viewer.get(EXPORT + query)
    assert refused.status_code == 400
    assert refused.content.decode().startswith("cannot export: ")
    assert "YYYY-MM-DD" in refused.content.decode() or "is before" in refused.content.decode()


def test_an_unknown_filter_is_refused_by_the_export(viewer: Client, march) -> None:
    assert viewer.get(EXPORT + "?no_such_field=1").status_code == 400


def test_the_export_needs_a_login() -> None:
    response = Client().get(EXPORT)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
