"""The configurator's own pages through the Django test client, against the real bus: smartw,
ocpp16, diag and chargepoint are fakes answering their commands on the test Redis (from a
thread of their own, since the test client blocks the test's thread)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from bus import Bus, contract
from bus.contract import CommandSpec
from bus.enums import CheckState, ConnectorStatus, Standard
from bus.messages import (
    AvailabilityReply,
    ChangeAvailabilityRequest,
    CommandResult,
    ConnectorState,
    DiagCheck,
    DiagReport,
    FreeModeRequest,
    Heartbeat,
    MeterReading,
    OcppConfigureReply,
    OcppConfigureRequest,
    OcppLink,
    RestartRequest,
    SelfTestRequest,
    ShutdownRequest,
    StationState,
    utcnow,
)
from bus.tasks import cancel_and_wait
from tests.support.waiting import async_wait_until
from webapp.station import actions
from webapp.station.models import OcppSetting, OcppState
from webapp.station.operator_models import AuditEntry, StationSetting

pytestmark = pytest.mark.django_db

GROUP_WAIT_S = 5.0
PAGES = ("/configurator/", "/configurator/settings/", "/configurator/time/", "/configurator/diagnostics/",
         "/configurator/power/", "/configurator/audit/")  # the menu
GET_PAGES = (*PAGES, "/configurator/dashboard.json", "/configurator/power/restart/",
             "/configurator/power/shutdown/")
POSTS = (  # every form of the pages, with values that an operator would get through
    ("/configurator/settings/", {"hmi_language": "ru", "hmi_stop_needs_card": "on"}),
    ("/configurator/settings/free-mode/", {"enabled": "on", "id_tag": "SITE-7"}),
    ("/configurator/settings/availability/", {"connector_id": "2", "operative": "inoperative"}),
    ("/configurator/settings/ocpp/", {"csms_url": "ws://csms.example:9000/ocpp", "charge_point_id": "CP-1",
                                      "security_profile": "0"}),
    ("/configurator/time/", {"new_time": "2025-03-03T10:00:00"}),
    ("/configurator/diagnostics/", {"subject": ""}),
    ("/configurator/power/restart/", {"confirm": "on"}),
    ("/configurator/power/shutdown/", {"confirm": "on"}),
)


# ---- fakes of the services that answer the configurator --------------------------------------


@dataclass
class FakeStation:
    """smartw, ocpp16, diag and chargepoint as far as the configurator asks them: records every
    request and answers with the statuses the test sets."""

    asked: list[Any] = field(default_factory=list)
    availability_status: str = "Accepted"
    ocpp_statuses: dict[str, str] = field(default_factory=dict)  # key -> status; default Accepted
    report: DiagReport = field(default_factory=lambda: DiagReport(ok=True, checks=()))

    async def availability(self, request: ChangeAvailabilityRequest) -> AvailabilityReply:
        self.asked.append(request)
        return AvailabilityReply(status=self.availability_status)  # type: ignore[arg-type]

    async def accept(self, request: Any) -> CommandResult:
        self.asked.append(request)
        return CommandResult(accepted=True)

    async def configure(self, request: OcppConfigureRequest) -> OcppConfigureReply:
        self.asked.append(request)
        status = self.ocpp_statuses.get(request.key, "Accepted")
        return OcppConfigureReply(status=status, reason="" if status == "Accepted" else "refused by the test")  # type: ignore[arg-type]

    async def self_test(self, request: SelfTestRequest) -> DiagReport:
        self.asked.append(request)
        return self.report

    def handlers(self) -> list[tuple[CommandSpec[Any, Any], Callable[[Any], Awaitable[Any]]]]:
        return [(contract.AVAILABILITY, self.availability), (contract.FREE_MODE, self.accept),
                (contract.OCPP_CONFIGURE, self.configure), (contract.SELF_TEST, self.self_test),
                (contract.SHUTDOWN, self.accept), (contract.RESTART, self.accept)]

    def of_type(self, kind: type) -> list[Any]:
        return [request for request in self.asked if isinstance(request, kind)]


class BusThread:
    """Serves commands on the real bus from an event loop in its own thread."""

    def __init__(self, handlers: list[tuple[CommandSpec[Any, Any], Callable[[Any], Awaitable[Any]]]]) -> None:
        self.handlers = handlers
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="fake-services")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> BusThread:
        self.thread.start()
        if not self.ready.wait(GROUP_WAIT_S * 2) or self.error is not None:
            raise AssertionError(f"fake services did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.loop is not None and self.stopping is not None
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(timeout=10)

    async def _serve(self) -> None:
        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        bus = Bus("fake-services")
        tasks = [asyncio.create_task(bus.serve(spec, handler, stop=self.stopping))
                 for spec, handler in self.handlers]
        try:
            for spec, _ in self.handlers:
                stream = bus.names.command(spec.name)
                await async_wait_until(lambda s=stream: _has_group(bus, s), timeout_s=GROUP_WAIT_S,
                                       what=f"a consumer group on {stream}")
        except BaseException as error:
            self.error = error
            self.stopping.set()
        self.ready.set()
        await self.stopping.wait()
        await cancel_and_wait(tasks)  # at once: serve() would finish its 0.5 s blocking read first
        await bus.close()


async def _has_group(bus: Bus, stream: str) -> bool:
    return bool(await bus.redis.exists(stream) and await bus.redis.xinfo_groups(stream))


@pytest.fixture
def fake_station(redis_client) -> Iterator[FakeStation]:
    station = FakeStation()
    with BusThread(station.handlers()):
        yield station


def bus_call(call: Callable[[Bus], Awaitable[Any]]) -> Any:
    """Run one bus call from a sync test (a Bus of its own on a loop of its own)."""
    async def run() -> Any:
        bus = Bus("test")
        try:
            return await call(bus)
        finally:
            await bus.close()

    return asyncio.run(run())


# ---- users -----------------------------------------------------------------------------------


def user_in(django_user_model, name: str, group: str | None) -> Any:
    user = django_user_model.objects.create_user(name, password=None, is_staff=True)
    if group is not None:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def operator(django_user_model) -> Client:
    client = Client()
    client.force_login(user_in(django_user_model, "olga", "operator"))
    return client


@pytest.fixture
def viewer(django_user_model) -> Client:
    client = Client()
    client.force_login(user_in(django_user_model, "victor", "viewer"))
    return client


def page_text(response) -> str:
    return response.content.decode()


def without_logout_and_filters(html: str) -> str:
    """The page without the admin's logout form and GET forms (filters): what is left may change
    the station."""
    html = re.sub(r'<form id="logout-form".*?</form>', "", html, flags=re.S)
    return re.sub(r'<form method="get".*?</form>', "", html, flags=re.S)


def post_forms(html: str) -> list[str]:
    return re.findall(r'<form[^>]*method="post"[^>]*>', without_logout_and_filters(html))


def submit_buttons(html: str) -> list[str]:
    return re.findall(r'<(?:input|button)[^>]*type="submit"[^>]*>', without_logout_and_filters(html))


def nothing_changed(fake: FakeStation) -> bool:
    return fake.asked == [] and not StationSetting.objects.exists() and not AuditEntry.objects.exists()


def shown_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# ---- who may do what -------------------------------------------------------------------------


@pytest.mark.parametrize("url", GET_PAGES)
def test_every_page_sends_anonymous_visitors_to_the_admin_login(url: str) -> None:
    response = Client().get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize(("url", "data"), POSTS)
def test_an_anonymous_post_changes_nothing(url: str, data: dict[str, str], fake_station: FakeStation) -> None:
    response = Client().post(url, data)

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert nothing_changed(fake_station)


def test_staff_without_a_station_role_is_refused(django_user_model) -> None:
    client = Client()
    client.force_login(user_in(django_user_model, "nobody", None))

    assert client.get("/configurator/").status_code == 403


@pytest.mark.parametrize("url", GET_PAGES)
def test_a_viewer_sees_every_page_but_no_form_to_submit(url: str, viewer: Client, redis_client) -> None:
    response = viewer.get(url)

    assert response.status_code == 200
    assert post_forms(page_text(response)) == [] and submit_buttons(page_text(response)) == []


@pytest.mark.parametrize(("url", "data"), POSTS)
def test_a_viewer_gets_403_on_every_post(url: str, data: dict[str, str], viewer: Client,
                                          fake_station: FakeStation) -> None:
    response = viewer.post(url, data)

    assert response.status_code == 403
    assert nothing_changed(fake_station)


def test_posts_without_the_csrf_token_are_refused(django_user_model, redis_client) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_in(django_user_model, "olga", "operator"))

    refused = client.post("/configurator/settings/", {"hmi_language": "ru"})
    assert refused.status_code == 403 and not StationSetting.objects.exists()

    client.get("/configurator/settings/")  # sets the CSRF cookie, as a browser would get it
    token = client.cookies["csrftoken"].value
    accepted = client.post("/configurator/settings/", {"hmi_language": "ru", "hmi_stop_needs_card": "on",
                                                       "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302
    assert StationSetting.objects.get(name="hmi_language").value == "ru"


def test_the_admin_index_links_every_page(operator: Client) -> None:
    html = page_text(operator.get("/admin/"))

    for url in PAGES:
        assert f'href="{url}"' in html


# ---- settings --------------------------------------------------------------------------------


def test_operator_settings_are_saved_published_and_audited(operator: Client, redis_client) -> None:
    response = operator.post("/configurator/settings/", {
        "hmi_language": "ru", "hmi_stop_needs_card": "on", "qr_feedback_url": "https://feedback.example/s1",
        "station_power_limit_kw": "50"}, follow=True)

    assert {row.name: row.value for row in StationSetting.objects.all()} == {
        "hmi_language": "ru", "qr_feedback_url": "https://feedback.example/s1",
        "station_power_limit_kw": 50.0}
    hmi = bus_call(lambda bus: bus.get(contract.HMI_SETTINGS))
    assert hmi.language == "ru" and [link.url for link in hmi.qr_links] == ["https://feedback.example/s1"]
    limit = bus_call(lambda bus: bus.get(contract.OPERATOR_LIMIT, connector_id=0))
    assert limit.limit_w == 50_000
    assert "HMI language: Saved" in shown_messages(response)
    entries = {entry.target: entry for entry in AuditEntry.objects.all()}
    assert set(entries) == {"hmi_language", "qr_feedback_url", "station_power_limit_kw"}
    assert entries["hmi_language"].username == "olga" and entries["hmi_language"].outcome == "Saved"
    assert (entries["hmi_language"].before, entries["hmi_language"].after) == ("en", "ru")


def test_bad_setting_values_show_an_error_per_field_and_save_nothing(operator: Client, redis_client) -> None:
    response = operator.post("/configurator/settings/", {
        "hmi_language": "de", "qr_feedback_url": "not a link", "station_power_limit_kw": "-5"})

    assert response.status_code == 200
    errors = response.context["settings_form"].errors
    assert set(errors) == {"hmi_language", "qr_feedback_url", "station_power_limit_kw"}
    assert not StationSetting.objects.exists() and not AuditEntry.objects.exists()
    assert bus_call(lambda bus: bus.get(contract.HMI_SETTINGS)) is None
    assert 'class="errorlist' in page_text(response)


def test_an_unchanged_settings_form_saves_nothing(operator: Client, redis_client) -> None:
    response = operator.post("/configurator/settings/", {"hmi_language": "en", "hmi_stop_needs_card": "on"},
                             follow=True)

    assert shown_messages(response) == ["Nothing changed."]
    assert not StationSetting.objects.exists() and not AuditEntry.objects.exists()


@pytest.mark.parametrize(("target", "status", "shown"), [
    ("2", "Scheduled", "Connector 2 inoperative: Scheduled"),
    ("0", "Accepted", "Station inoperative: Accepted"),
])
def test_availability_goes_to_smartw_and_its_answer_is_shown(
        target: str, status: str, shown: str, operator: Client, fake_station: FakeStation) -> None:
    fake_station.availability_status = status

    response = operator.post("/configurator/settings/availability/",
                             {"connector_id": target, "operative": "inoperative"}, follow=True)

    assert fake_station.of_type(ChangeAvailabilityRequest) == [
        ChangeAvailabilityRequest(connector_id=int(target), operative=False)]
    assert shown in shown_messages(response)
    entry = AuditEntry.objects.get()
    assert (entry.username, entry.action, entry.outcome) == ("olga", "availability", status)


def test_availability_of_an_unknown_connector_is_refused_before_smartw_is_asked(
        operator: Client, fake_station: FakeStation) -> None:
    response = operator.post("/configurator/settings/availability/",
                             {"connector_id": "9", "operative": "inoperative"}, follow=True)

    assert fake_station.asked == [] and not AuditEntry.objects.exists()
    assert any(text.startswith("Availability not changed") for text in shown_messages(response))


def test_the_availability_rows_show_each_targets_state_from_the_bus(operator: Client, redis_client) -> None:
    bus_call(lambda bus: bus.set(contract.CONNECTOR, ConnectorState(
        connector_id=3, standard=Standard.CHADEMO, status=ConnectorStatus.UNAVAILABLE, operative=False),
        connector_id=3))

    html = page_text(operator.get("/configurator/settings/"))

    row = re.search(r'<tr data-target="3">.*?</tr>', html, re.S)
    assert row and "Unavailable" in row.group(0) and "Inoperative" in row.group(0)
    assert 'id="availability-3-operative"' in html and 'id="availability-0-inoperative"' in html


def test_free_mode_goes_to_smartw(operator: Client, fake_station: FakeStation) -> None:
    response = operator.post("/configurator/settings/free-mode/", {"enabled": "on", "id_tag": "SITE-7"},
                             follow=True)

    assert fake_station.of_type(FreeModeRequest) == [FreeModeRequest(enabled=True, id_tag="SITE-7")]
    assert "Free mode on: Accepted" in shown_messages(response)


def test_a_bad_free_mode_id_tag_is_an_error_and_nothing_is_sent(
        operator: Client, fake_station: FakeStation) -> None:
    response = operator.post("/configurator/settings/free-mode/", {"enabled": "on", "id_tag": "TWO WORDS"})

    assert response.status_code == 200
    assert "id_tag" in response.context["free_mode_form"].errors
    assert fake_station.asked == [] and not AuditEntry.objects.exists()


def test_the_csms_form_shows_what_ocpp16_stored_but_never_the_key(operator: Client, redis_client) -> None:
    OcppState.objects.create(name="operator_address", value={"csms_url": "wss://stored.example/ocpp",
                                                             "charge_point_id": "CP-STORED"})
    OcppSetting.objects.create(key="SecurityProfile", value="2")
    OcppSetting.objects.create(key="AuthorizationKey", value="00112233445566778899")

    response = operator.get("/configurator/settings/")

    assert response.context["ocpp_form"].initial == {
        "csms_url": "wss://stored.example/ocpp", "charge_point_id": "CP-STORED", "security_profile": "2"}
    assert "00112233445566778899" not in page_text(response)


def test_csms_changes_go_to_ocpp16_in_order_and_the_key_is_never_shown(
        operator: Client, fake_station: FakeStation) -> None:
    key = "0123456789abcdef0123"
    response = operator.post("/configurator/settings/ocpp/", {
        "csms_url": "wss://csms.example/ocpp", "charge_point_id": "SIM-0001", "security_profile": "2",
        "authorization_key": key}, follow=True)

    assert [(r.key, r.value) for r in fake_station.of_type(OcppConfigureRequest)] == [
        ("CsmsUrl", "wss://csms.example/ocpp"), ("AuthorizationKey", key), ("SecurityProfile", "2")]
    assert {"CsmsUrl: Accepted", "AuthorizationKey: Accepted", "SecurityProfile: Accepted"} <= set(
        shown_messages(response))
    assert key not in page_text(response)
    assert AuditEntry.objects.get(target="AuthorizationKey").after == "(hidden)"


def test_a_csms_change_ocpp16_refuses_stops_the_ones_after_it(
        operator: Client, fake_station: FakeStation) -> None:
    fake_station.ocpp_statuses["AuthorizationKey"] = "Rejected"

    response = operator.post("/configurator/settings/ocpp/", {
        "csms_url": "ws://127.0.0.1:9000/ocpp", "charge_point_id": "SIM-0001", "security_profile": "1",
        "authorization_key": "00112233445566778899"}, follow=True)

    assert [r.key for r in fake_station.of_type(OcppConfigureRequest)] == ["AuthorizationKey"]
    messages = shown_messages(response)
    assert "AuthorizationKey: Rejected (refused by the test)" in messages
    assert "Not sent: SecurityProfile" in messages


def test_bad_csms_values_are_errors_and_nothing_is_sent(operator: Client, fake_station: FakeStation) -> None:
    response = operator.post("/configurator/settings/ocpp/", {
        "csms_url": "http://csms.example", "charge_point_id": "x" * 49, "security_profile": "7",
        "authorization_key": "00112233445566778899"})

    assert set(response.context["ocpp_form"].errors) == {"csms_url", "charge_point_id", "security_profile"}
    assert fake_station.asked == []
    assert "00112233445566778899" not in page_text(response)  # not even back in the form with errors


# ---- time, diagnostics, restart and shutdown ------------------------------------------------


def test_setting_the_clock_without_a_command_says_not_configured(operator: Client, monkeypatch) -> None:
    monkeypatch.delenv(actions.SET_CLOCK_ENV, raising=False)

    page = page_text(operator.get("/configurator/time/"))
    response = operator.post("/configurator/time/", {"new_time": "2025-03-03T10:00:00"}, follow=True)

    assert 'id="clock-not-configured"' in page
    assert any(text.startswith("Set clock: NotConfigured") for text in shown_messages(response))
    assert AuditEntry.objects.get().outcome.startswith("NotConfigured")


def test_setting_the_clock_runs_the_configured_command_with_the_utc_time(
        operator: Client, monkeypatch, tmp_path: Path) -> None:
    script = tmp_path / "set-clock"
    script.write_text(f'#!/bin/sh\necho "$1" > {tmp_path / "asked"}\n')
    script.chmod(0o755)
    monkeypatch.setenv(actions.SET_CLOCK_ENV, str(script))

    response = operator.post("/configurator/time/", {"new_time": "2025-03-03T10:00:05"}, follow=True)

    assert "Set clock: Accepted" in shown_messages(response)
    assert (tmp_path / "asked").read_text().strip() == "2025-03-03T10:00:05+00:00"


def test_a_bad_time_is_an_error(operator: Client) -> None:
    response = operator.post("/configurator/time/", {"new_time": "yesterday"})

    assert "new_time" in response.context["form"].errors and not AuditEntry.objects.exists()


def test_the_self_test_report_is_shown(operator: Client, fake_station: FakeStation) -> None:
    fake_station.report = DiagReport(ok=False, checks=(
        DiagCheck(kind="meter", subject="connector1", state=CheckState.OK, age_s=0.4),
        DiagCheck(kind="io_module", subject="io_module", state=CheckState.OFFLINE)))

    response = operator.post("/configurator/diagnostics/", {"subject": "io_module"})

    assert fake_station.of_type(SelfTestRequest) == [SelfTestRequest(subject="io_module")]
    html = page_text(response)
    assert "Self-test just run: Failed" in html
    assert re.search(r'data-key="io_module:io_module".*?offline', html, re.S)
    assert AuditEntry.objects.get().outcome == "Failed: io_module:io_module"
    assert 'href="/admin/station/jobrecord/archive/"' in html


def test_a_self_test_diag_does_not_answer_says_so(operator: Client, redis_client, monkeypatch) -> None:
    monkeypatch.setattr(actions, "REPLY_TIMEOUT_S", 0.3)

    response = operator.post("/configurator/diagnostics/", {"subject": ""})

    assert "Self-test not run: NotAnswered" in page_text(response)


@pytest.mark.parametrize(("kind", "request_type"),
                         [("shutdown", ShutdownRequest), ("restart", RestartRequest)])
def test_shutdown_and_restart_need_the_confirmation(kind: str, request_type: type, operator: Client,
                                                   fake_station: FakeStation) -> None:
    url = f"/configurator/power/{kind}/"
    assert 'id="confirm-form"' in page_text(operator.get(url))

    unconfirmed = operator.post(url, {})
    assert "Tick the box to confirm." in page_text(unconfirmed) and fake_station.asked == []

    confirmed = operator.post(url, {"confirm": "on"})
    assert "The station answered: Accepted" in page_text(confirmed)
    assert len(fake_station.of_type(request_type)) == 1
    assert AuditEntry.objects.get().action == kind


# ---- dashboard and audit log -----------------------------------------------------------------


def put_station_in_service() -> None:
    async def put(bus: Bus) -> None:
        await bus.set(contract.STATION, StationState(status=ConnectorStatus.AVAILABLE, estop=False,
                                                     io_online=True))
        await bus.set(contract.OCPP_LINK, OcppLink(connected=True, registration="Accepted",
                                                   csms_url="ws://user:secret@127.0.0.1:9000/ocpp"))
        await bus.set(contract.CONNECTOR, ConnectorState(
            connector_id=1, standard=Standard.CCS, status=ConnectorStatus.CHARGING, plugged=True,
            power_w=50_000, session_energy_wh=12_340, soc=42, session_id="s1", id_tag="AABBCCDD",
            session_started_at=utcnow() - timedelta(minutes=25)), connector_id=1)
        await bus.set(contract.METER, MeterReading(meter="connector1", energy_wh=1_000_000, power_w=50_000,
                                                   voltage_v=400.0, current_a=125.0), meter="connector1")
        await bus.set(contract.METER, MeterReading(meter="connector2", energy_wh=5_000, power_w=0,
                                                   at=utcnow() - timedelta(minutes=5)), meter="connector2")
        for service in ("smartw", "ocpp16"):
            await bus.set(contract.HEARTBEAT, Heartbeat(service=service, pid=1), ttl_s=30, service=service)

    bus_call(put)


def cells(data: dict[str, Any], table: str, key: str) -> dict[str, str]:
    found = next(t for t in data["tables"] if t["name"] == table)
    return next(row["cells"] for row in found["rows"] if row["key"] == key)


def test_the_dashboard_shows_station_connectors_meters_and_sessions(viewer: Client, redis_client) -> None:
    put_station_in_service()

    html = page_text(viewer.get("/configurator/"))
    data = viewer.get("/configurator/dashboard.json").json()

    assert cells(data, "connectors", "1") | {"duration": "-"} == {
        "id": "1", "standard": "CCS", "status": "Charging", "info": "-", "availability": "Operative",
        "power": "50.0", "energy": "12.34", "soc": "42", "id_tag": "AABBCCDD", "duration": "-"}
    assert cells(data, "connectors", "1")["duration"].startswith("0:25:")
    assert cells(data, "connectors", "3")["status"] == "no data"
    station = cells(data, "station", "station")
    assert (station["csms"], station["registration"], station["csms_url"]) == (
        "online", "Accepted", "ws://127.0.0.1:9000/ocpp")  # the password is not shown
    assert cells(data, "sessions", "s1")["id_tag"] == "AABBCCDD"
    assert cells(data, "meters", "connector1")["power"] == "50.00"
    assert cells(data, "meters", "connector2")["age"].endswith("(stale)")
    assert cells(data, "meters", "station")["age"] == "no data"
    assert data["warnings"] == []
    assert '<tr data-key="1"' in html and ">Charging<" in html


def test_the_dashboard_warns_when_smartw_is_not_running(viewer: Client, redis_client) -> None:
    put_station_in_service()
    bus_call(lambda bus: bus.delete(contract.HEARTBEAT, service="smartw"))

    data = viewer.get("/configurator/dashboard.json").json()

    assert data["warnings"] == [
        "smartw is not running: the station and connector states are the last it wrote"]


def test_the_dashboard_says_when_the_bus_is_unreachable(viewer: Client, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")

    response = viewer.get("/configurator/")

    assert response.status_code == 200
    assert "The bus (Redis) is unreachable" in page_text(response)
    assert viewer.get("/configurator/dashboard.json").json()["tables"] == []


def test_the_audit_log_lists_entries_newest_first_with_filters(viewer: Client) -> None:
    for user, action in (("olga", "setting"), ("ivan", "stop"), ("olga", "availability")):
        AuditEntry.objects.create(username=user, source=AuditEntry.Source.CONFIGURATOR, action=action,
                                  target="station", outcome="Accepted")

    everything = page_text(viewer.get("/configurator/audit/"))
    olga = page_text(viewer.get("/configurator/audit/?username=olga"))

    assert everything.index(">availability<") < everything.index(">stop<") < everything.index(">setting<")
    assert ">stop<" not in olga and ">setting<" in olga and ">availability<" in olga
