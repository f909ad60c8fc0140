"""The REST API (/api/): who may call it, what it reads from the real bus and the test database,
and the commands it sends to a fake smartw on the real bus, each one in the audit log.

Requests go through Django's test client (the whole middleware stack); async endpoints then run
in their own event loop, so the fake smartw answers from a thread of its own (api_station)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import AsyncClient, Client

from bus import Bus, contract
from bus.enums import ConnectorStatus, Standard, StartSource, StopReason
from bus.messages import (
    ChangeAvailabilityRequest,
    ConnectorState,
    DeviceState,
    FreeModeRequest,
    MeterReading,
    OcppLink,
    OcppTransaction,
    StartRequest,
    StationState,
    StopRequest,
    utcnow,
)
from tests.webapp.api_station import FakeSmartw, answering, answering_in_thread
from tests.webapp.test_status_command import put
from webapp.station import actions
from webapp.station.models import ChargingSession, SessionEvent
from webapp.station.operator_models import ApiToken, AuditEntry
from webapp.station.session_csv import SessionFilter, select_sessions, write_sessions
from workers.common.redis_server import free_port

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"


@dataclass
class People:
    """One user per role, each with an API key; `nobody` is a user without a role."""

    viewer: Any
    operator: Any
    nobody: Any
    keys: dict[str, str]

    def client(self, who: str) -> Client:
        return Client(headers={"Authorization": f"Bearer {self.keys[who]}"})


@pytest.fixture
def people(django_user_model, settings) -> People:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    users = {}
    for name in ("viewer", "operator", "nobody"):
        user = django_user_model.objects.create_user(name, password=PASSWORD, is_staff=True)
        if name != "nobody":
            user.groups.add(Group.objects.get(name=name))  # the roles migration 0009 made
        users[name] = user
    keys = {name: ApiToken.issue(user, f"{name}'s script")[1] for name, user in users.items()}
    return People(viewer=users["viewer"], operator=users["operator"], nobody=users["nobody"], keys=keys)


@pytest.fixture
def smartw(redis_client) -> Iterator[FakeSmartw]:
    fake = FakeSmartw(reason="present_card")
    with answering_in_thread(fake):
        yield fake


def body(response: Any) -> Any:
    return json.loads(response.content)


# ---- who may call -----------------------------------------------------------------------------


def test_anonymous_callers_get_401_with_how_to_authenticate(redis_client) -> None:
    command = Client().post("/api/station/free-mode", {"enabled": True}, content_type="application/json")
    for response in (Client().get("/api/status"), Client().get("/api/sessions"), command):
        assert response.status_code == 401
        assert "Bearer" in body(response)["detail"]
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_docs_and_schema_are_public() -> None:
    assert Client().get("/api/docs").status_code == 200
    schema = body(Client().get("/api/openapi.json"))
    assert "/api/connectors/{connector_id}/start" in schema["paths"]


def test_a_token_acts_as_its_user_and_notes_its_use_once_a_minute(people: People, redis_client) -> None:
    token = ApiToken.objects.get(user=people.viewer)
    assert token.last_used_at is None

    assert people.client("viewer").get("/api/status").status_code == 200
    token.refresh_from_db()
    first_use = token.last_used_at
    assert first_use is not None
    people.client("viewer").get("/api/status")
    token.refresh_from_db()
    assert token.last_used_at == first_use  # not written again within the minute

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first_use - timedelta(minutes=2))
    people.client("viewer").get("/api/status")
    token.refresh_from_db()
    assert token.last_used_at > first_use - timedelta(minutes=1)


def test_unknown_revoked_and_inactive_users_tokens_are_refused(people: People, redis_client) -> None:
    ApiToken.objects.filter(user=people.viewer).update(revoked=True)
    people.operator.is_active = False
    people.operator.save()
    wrong = Client(headers={"Authorization": "Bearer not-a-key"})

    for client in (people.client("viewer"), people.client("operator"), wrong):
        response = client.get("/api/status")
        assert response.status_code == 401
        assert "unknown or revoked API token" in body(response)["detail"]


def test_a_viewer_reads_but_may_not_command(people: People, redis_client) -> None:
    viewer = people.client("viewer")

    assert viewer.get("/api/connectors").status_code == 200
    refused = viewer.post("/api/connectors/1/stop")
    assert refused.status_code == 403
    assert "operator role" in body(refused)["detail"]
    assert not AuditEntry.objects.exists()


def test_a_user_without_a_role_is_refused_everything(people: People, redis_client) -> None:
    nobody = people.client("nobody")

    assert nobody.get("/api/status").status_code == 403
    assert nobody.get("/api/sessions").status_code == 403
    assert nobody.post("/api/connectors/1/stop").status_code == 403


def test_a_configurator_login_reads_and_commands_with_the_csrf_token(people: People, redis_client) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(people.operator)
    browser.get("/admin/")  # a configurator page with a form sets the CSRF cookie
    csrf = browser.cookies["csrftoken"].value

    assert browser.get("/api/status").status_code == 200  # reading needs no CSRF token
    without = browser.post("/api/connectors/99/stop")
    assert without.status_code == 403
    assert "CSRF" in body(without)["detail"]
    with_token = browser.post("/api/connectors/99/stop", headers={"X-CSRFToken": csrf})
    assert with_token.status_code == 404  # past the login and the role: the connector is unknown


def test_a_bearer_token_needs_no_csrf_token(people: People, redis_client) -> None:
    client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {people.keys['operator']}"})

    assert client.post("/api/connectors/99/stop").status_code == 404


# ---- station state from the bus ---------------------------------------------------------------


def test_status_is_what_manage_py_status_prints_and_more(people: People, redis_client) -> None:
    put(contract.STATION, StationState(status=ConnectorStatus.AVAILABLE, estop=False, io_online=True))
    put(contract.OCPP_LINK, OcppLink(connected=True, registration="Accepted", queued_messages=2,
                                     csms_url="ws://cp1:secret@127.0.0.1:9000/ocpp"))
    started = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    put(contract.CONNECTOR, ConnectorState(
        connector_id=1, standard=Standard.CCS, status=ConnectorStatus.CHARGING, plugged=True, power_w=48_000,
        session_energy_wh=5_250, soc=61.5, target_soc=80, session_id="s1", session_started_at=started),
        connector_id=1)
    put(contract.OCPP_TRANSACTION, OcppTransaction(connector_id=1, session_id="s1", transaction_id=7),
        connector_id=1)
    out = io.StringIO()
    call_command("status", "--json", stdout=out)
    printed = json.loads(out.getvalue())

    status = body(people.client("viewer").get("/api/status"))

    assert status["station"] == printed["station"]
    assert "secret" not in json.dumps(status)
    for shown, expected in zip(status["connectors"], printed["connectors"], strict=True):
        assert {name: shown[name] for name in expected} == expected
    first = status["connectors"][0]
    assert (first["plugged"], first["target_soc"], first["session_id"]) == (True, 80, "s1")
    assert first["session_started_at"] == "2026-03-01T10:00:00Z"
    assert status["connectors"][1]["status"] == "Unknown"


def test_one_connector_by_id_and_unknown_ids(people: People, redis_client) -> None:
    put(contract.CONNECTOR, ConnectorState(connector_id=2, standard=Standard.TYPE2,
                                           status=ConnectorStatus.FAULTED, info="estop"), connector_id=2)
    viewer = people.client("viewer")

    connector = body(viewer.get("/api/connectors/2"))
    assert (connector["id"], connector["status"], connector["info"]) == (2, "Faulted", "estop")
    assert [c["id"] for c in body(viewer.get("/api/connectors"))] == [1, 2, 3, 4]
    missing = viewer.get("/api/connectors/9")
    assert missing.status_code == 404
    assert body(missing)["detail"] == "no connector 9 (this station has [1, 2, 3, 4])"
    for wrong in ("0", "-1", "two"):
        response = viewer.get(f"/api/connectors/{wrong}")
        assert response.status_code == 422
        assert body(response)["errors"][0]["location"] == "path.connector_id"


def test_meters_show_the_latest_reading_its_age_and_whether_it_is_stale(people: People, redis_client) -> None:
    now = utcnow()
    put(contract.METER, MeterReading(meter="connector1", energy_wh=12_000, power_w=7_400, at=now),
        meter="connector1")
    old = now - timedelta(seconds=9)
    put(contract.METER, MeterReading(meter="connector2", energy_wh=0, power_w=0, at=old), meter="connector2")
    put(contract.DEVICE, DeviceState(device="meter:connector3", available=False, reason="timeout"),
        device="meter:connector3")

    meters = {meter["name"]: meter for meter in body(people.client("viewer").get("/api/meters"))}

    assert list(meters) == ["connector1", "connector2", "connector3", "connector4", "station"]
    fresh = meters["connector1"]
    assert (fresh["reading"]["energy_wh"], fresh["reading"]["power_w"]) == (12_000, 7_400)
    assert fresh["stale"] is False
    assert 0 <= fresh["age_s"] < 5
    assert meters["connector2"]["stale"] is True and meters["connector2"]["age_s"] >= 9  # 3 polls of 1 s
    assert (meters["connector3"]["available"], meters["connector3"]["reading"]) == (False, None)
    assert meters["connector3"]["stale"] is True
    assert (meters["station"]["connector_id"], meters["station"]["model"]) == (None, "mercury234")


def test_a_meter_key_holding_garbage_is_shown_as_no_reading(people: People, redis_client) -> None:
    redis_client.set(Bus("test").names.key(contract.METER.format(meter="connector1")), '{"energy_wh": -5}')

    meter = body(people.client("viewer").get("/api/meters"))[0]

    assert (meter["reading"], meter["stale"]) == (None, True)


def test_reads_answer_503_when_redis_is_down(people: People, redis_client, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")

    for path in ("/api/status", "/api/connectors", "/api/connectors/1", "/api/meters"):
        response = people.client("viewer").get(path)
        assert response.status_code == 503, path
        assert "Redis" in body(response)["detail"]


# ---- sessions from the database ---------------------------------------------------------------


def session(session_id: str, connector_id: int, day: int, id_tag: str = "CARD", *,
            running: bool = False) -> ChargingSession:
    started = datetime(2026, 3, day, 10, 0, tzinfo=UTC)
    return ChargingSession.objects.create(
        session_id=session_id, connector_id=connector_id, standard="CCS", id_tag=id_tag, started_at=started,
        stopped_at=None if running else started + timedelta(minutes=30), meter_start_wh=1_000,
        meter_stop_wh=None if running else 13_000, energy_wh=0 if running else 12_000, peak_power_w=48_000,
        stop_reason="" if running else "Local")


def test_sessions_come_newest_first_a_page_at_a_time(people: People) -> None:
    for day in range(1, 6):
        session(f"s{day}", 1, day)
    viewer = people.client("viewer")

    first = body(viewer.get("/api/sessions?limit=2"))
    second = body(viewer.get("/api/sessions?limit=2&offset=2"))

    assert first["count"] == 5 and [s["session_id"] for s in first["items"]] == ["s5", "s4"]
    assert [s["session_id"] for s in second["items"]] == ["s3", "s2"]
    one = first["items"][0]
    assert (one["energy_wh"], one["duration_s"], one["running"]) == (12_000, 1800, False)
    assert one["stop_reason"] == "Local"


def test_sessions_filter_by_connector_time_and_id_tag(people: People) -> None:
    session("a", 1, 1, "ALICE")
    session("b", 2, 2, "BOB")
    session("c", 2, 3, "ALICE", running=True)
    viewer = people.client("viewer")

    def ids(query: str) -> list[str]:
        return [s["session_id"] for s in body(viewer.get(f"/api/sessions?{query}"))["items"]]

    assert ids("connector=2") == ["c", "b"]
    assert ids("id_tag=ALICE") == ["c", "a"]
    assert ids("from=2026-03-02T00:00:00Z&to=2026-03-03T00:00:00Z") == ["b"]
    assert ids("from=2026-03-02T12:00:00%2B01:00") == ["c"]  # 11:00 UTC: after b started


def test_bad_session_filters_are_422_with_a_reason(people: People) -> None:
    viewer = people.client("viewer")

    naive = viewer.get("/api/sessions?from=2026-03-02T00:00:00")
    backwards = viewer.get("/api/sessions?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z")
    too_many = viewer.get("/api/sessions?limit=501")
    twice = viewer.get("/api/sessions?connector=1&connector=2")

    assert naive.status_code == backwards.status_code == too_many.status_code == twice.status_code == 422
    assert body(naive)["errors"][0]["location"] == "query.from"
    assert body(backwards)["detail"] == "'from' must be before 'to'"
    assert body(too_many)["errors"][0]["location"] == "query.limit"
    assert body(twice)["errors"][0]["location"] == "query.connector"


def test_one_session_with_its_timeline(people: People) -> None:
    row = session("s1", 1, 1, running=True)
    SessionEvent.objects.create(session=row, at=row.started_at, kind="started", detail="card CARD")
    SessionEvent.objects.create(session=row, at=row.started_at + timedelta(seconds=90), kind="limit",
                                detail="50 kW", data={"limit_w": 50_000})
    viewer = people.client("viewer")

    shown = body(viewer.get("/api/sessions/s1"))

    assert (shown["running"], shown["stopped_at"], shown["duration_s"]) == (True, None, None)
    assert [(e["kind"], e["offset_s"], e["data"]) for e in shown["events"]] == [
        ("started", 0, {}), ("limit", 90, {"limit_w": 50_000})]
    assert viewer.get("/api/sessions/nope").status_code == 404
    assert viewer.get("/api/sessions/not%20an%20id").status_code == 422


def test_sessions_csv_is_the_configurators_export(people: People) -> None:
    session("a", 1, 1, "ALICE")
    session("b", 2, 2, "BOB,JR")

    response = people.client("viewer").get("/api/sessions.csv?connector=2")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    expected = io.StringIO()
    write_sessions(expected, select_sessions(SessionFilter(connector_id=2)))
    assert response.content.decode() == expected.getvalue()
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["session_id"], r["id_tag"]) for r in rows] == [("b", "BOB,JR")]


# ---- commands, end to end through a fake smartw on the bus ------------------------------------


def audit() -> list[tuple[str, str, str, str]]:
    return [(e.username, e.source, e.action, e.target) for e in AuditEntry.objects.order_by("id")]


def test_start_with_and_without_an_id_tag(people: People, smartw: FakeSmartw) -> None:
    operator = people.client("operator")

    with_tag = operator.post("/api/connectors/1/start", {"id_tag": "AABBCCDD"},
                             content_type="application/json")
    without = operator.generic("POST", "/api/connectors/2/start")  # no body at all, like `curl -X POST`

    assert with_tag.status_code == without.status_code == 200
    assert body(with_tag) == {"done": True, "status": "Accepted", "detail": "present_card"}
    assert smartw.requests == [
        StartRequest(connector_id=1, id_tag="AABBCCDD", source=StartSource.REMOTE),
        StartRequest(connector_id=2, id_tag=None, source=StartSource.HMI)]
    assert audit() == [("operator", "api", "start", "connector 1"),
                       ("operator", "api", "start", "connector 2")]


def test_a_rejected_stop_is_200_with_done_false(people: People, smartw: FakeSmartw) -> None:
    smartw.accept, smartw.reason = False, "no_session"

    response = people.client("operator").post("/api/connectors/3/stop")

    assert response.status_code == 200
    assert body(response) == {"done": False, "status": "Rejected", "detail": "no_session"}
    assert smartw.requests == [StopRequest(connector_id=3, reason=StopReason.REMOTE)]
    assert AuditEntry.objects.get().outcome == "Rejected: no_session"


def test_connector_and_station_availability(people: People, smartw: FakeSmartw) -> None:
    smartw.availability = "Scheduled"
    operator = people.client("operator")

    connector = operator.post("/api/connectors/2/availability", {"operative": False},
                              content_type="application/json")
    station = operator.post("/api/station/availability", {"operative": True}, content_type="application/json")

    assert body(connector) == body(station) == {"done": True, "status": "Scheduled", "detail": ""}
    assert smartw.requests == [ChangeAvailabilityRequest(connector_id=2, operative=False),
                               ChangeAvailabilityRequest(connector_id=0, operative=True)]
    assert [entry.after for entry in AuditEntry.objects.order_by("id")] == ["inoperative", "operative"]
    assert audit()[1][3] == "station"


def test_free_mode_on_with_an_id_tag_and_off(people: People, smartw: FakeSmartw) -> None:
    operator = people.client("operator")

    on = operator.post("/api/station/free-mode", {"enabled": True, "id_tag": "SITE-7"},
                       content_type="application/json")
    off = operator.post("/api/station/free-mode", {"enabled": False}, content_type="application/json")

    assert on.status_code == off.status_code == 200
    assert smartw.requests == [FreeModeRequest(enabled=True, id_tag="SITE-7"),
                               FreeModeRequest(enabled=False, id_tag=None)]
    assert [e.action for e in AuditEntry.objects.all()] == ["free_mode", "free_mode"]


def test_a_command_nobody_answers_is_503_and_still_audited(people: People, redis_client, monkeypatch) -> None:
    monkeypatch.setattr(actions, "REPLY_TIMEOUT_S", 0.2)

    response = people.client("operator").post("/api/connectors/1/stop")

    assert response.status_code == 503
    assert (body(response)["done"], body(response)["status"]) == (False, "NotAnswered")
    assert AuditEntry.objects.get().outcome.startswith("NotAnswered")


def test_a_command_with_redis_down_is_503(people: People, redis_client, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")

    response = people.client("operator").post("/api/station/availability", {"operative": True},
                                              content_type="application/json")

    assert response.status_code == 503
    assert body(response)["status"] == "BusUnavailable"


@pytest.mark.parametrize(("path", "payload", "status", "where"), [
    ("/api/connectors/9/start", {}, 404, None),
    ("/api/connectors/0/stop", None, 422, "path.connector_id"),
    ("/api/connectors/1/start", {"id_tag": "has space"}, 422, "body.id_tag"),
    ("/api/connectors/1/start", {"id_tag": "X" * 21}, 422, "body.id_tag"),
    ("/api/connectors/1/start", {"id_tag": "TAB\x07"}, 422, None),  # not printable: actions.InvalidInput
    ("/api/connectors/1/availability", {}, 422, "body.operative"),
    ("/api/station/availability", {"operative": "yes"}, 422, "body.operative"),
    ("/api/station/free-mode", {"enabled": False, "id_tag": "SITE-7"}, 422, "body"),
    ("/api/station/free-mode", "{not json", 400, None),
])
def test_bad_commands_are_refused_before_anything_is_sent(
        people: People, redis_client, path: str, payload: Any, status: int, where: str | None) -> None:
    operator = people.client("operator")
    if payload is None:
        response = operator.generic("POST", path)
    else:
        response = operator.post(path, payload, content_type="application/json")

    assert response.status_code == status, response.content
    assert body(response)["detail"]
    if where is not None:
        assert body(response)["errors"][0]["location"] == where
    assert not AuditEntry.objects.exists()
    assert not redis_client.keys("*:cmd:*")  # nothing was asked of smartw


# ---- as the web service runs it: async, under ASGI ---------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_a_token_reads_and_commands_end_to_end(bus: Bus) -> None:
    """The web service is ASGI: the endpoints run in its event loop and reach the database from
    asgiref's worker thread (hence a transactional test database)."""
    from django.contrib.auth import get_user_model

    def make_operator() -> str:
        user = get_user_model().objects.create_superuser("root", "root@example.org", PASSWORD)
        return ApiToken.issue(user, "asgi")[1]

    key = await sync_to_async(make_operator)()
    client, auth = AsyncClient(), {"Authorization": f"Bearer {key}"}
    await bus.set(contract.CONNECTOR, ConnectorState(connector_id=4, standard=Standard.GBT,
                                                     status=ConnectorStatus.PREPARING), connector_id=4)
    smartw = FakeSmartw(reason="present_card")

    async with answering(smartw):
        read = await client.get("/api/connectors/4", headers=auth)
        started = await client.post("/api/connectors/4/start", {}, content_type="application/json",
                                    headers=auth)

    assert (read.status_code, read.json()["status"]) == (200, "Preparing")
    assert (started.status_code, started.json()["status"]) == (200, "Accepted")
    assert smartw.requests == [StartRequest(connector_id=4, source=StartSource.HMI)]
    entries = await sync_to_async(lambda: list(AuditEntry.objects.values_list("username", "source")))()
    assert entries == [("root", "api")]
