"""Operator actions (webapp/station/actions.py), the one path for the configurator and the REST
API: the role check, the service's answer, the audit entry, bad input refused before anything
happens, and a silent service reported as such. Services are played on the real bus."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.core.exceptions import PermissionDenied

from bus import Bus, contract
from bus.messages import (
    AvailabilityReply,
    ChangeAvailabilityRequest,
    CommandResult,
    DiagCheck,
    DiagReport,
    OcppConfigureReply,
    OcppConfigureRequest,
    SelfTestRequest,
)
from tests.support.bus_servers import serving
from tests.support.waiting import async_wait_until
from webapp.station import actions
from webapp.station.actions import Actor, InvalidInput
from webapp.station.operator_models import AuditEntry, StationSetting

pytestmark = pytest.mark.django_db(transaction=True)
API = AuditEntry.Source.API
KEY = "00112233445566778899aabbccddeeff"


def role_group(role: str) -> Group:
    """The role's group as migration 0009 makes it (a transactional test's flush removed it)."""
    group, _ = Group.objects.get_or_create(name=role)
    if role == "operator":
        group.permissions.add(Permission.objects.get(codename="operate_station"))
    return group


def user(name: str, role: str | None) -> User:
    account = User.objects.create_user(name, password="x", is_staff=True)
    if role is not None:
        account.groups.add(role_group(role))
    return User.objects.get(pk=account.pk)  # fresh: permission caches start empty


@pytest.fixture
def operator() -> Actor:
    return Actor.operator(user("olga", "operator"), API)


async def audit() -> list[AuditEntry]:
    return await sync_to_async(lambda: list(AuditEntry.objects.order_by("id")))()


async def served(bus: Bus, *specs: contract.CommandSpec) -> None:
    """Wait until each command's server listens (a request sent before is never read)."""
    async def listening() -> bool:
        for spec in specs:
            stream = bus.names.command(spec.name)
            if not (await bus.redis.exists(stream) and await bus.redis.xinfo_groups(stream)):
                return False
        return True

    await async_wait_until(listening, timeout_s=5, what="the played services to listen")


@pytest.fixture
async def quick_timeouts(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    monkeypatch.setattr(actions, "REPLY_TIMEOUT_S", 0.3)
    yield


# ---- roles ------------------------------------------------------------------------------------

def test_only_an_active_operator_or_superuser_may_act() -> None:
    assert Actor.operator(user("olga", "operator"), API).username == "olga"
    root = User.objects.create_superuser("root", password="x")
    assert Actor.operator(root, AuditEntry.Source.CONFIGURATOR).source == "configurator"
    for someone in (user("vic", "viewer"), user("nobody", None), AnonymousUser()):
        with pytest.raises(PermissionDenied):
            Actor.operator(someone, API)
    retired = user("ex", "operator")
    retired.is_active = False
    with pytest.raises(PermissionDenied):
        Actor.operator(retired, API)


# ---- settings web owns ------------------------------------------------------------------------

async def test_a_setting_is_stored_published_and_audited(operator: Actor, bus: Bus) -> None:
    outcome = await actions.change_setting(operator, "hmi_language", "ru")
    assert outcome.done and outcome.status == "Saved"
    row = await sync_to_async(StationSetting.objects.get)(name="hmi_language")
    assert (row.value, row.changed_by) == ("ru", "olga")
    assert (await bus.get(contract.HMI_SETTINGS)).language == "ru"
    [entry] = await audit()
    assert (entry.username, entry.source, entry.action, entry.target) == (
        "olga", "api", "setting", "hmi_language")
    assert (entry.before, entry.after, entry.outcome) == ("en", "ru", "Saved")


async def test_qr_links_reach_the_hmi_in_order_and_empty_ones_are_left_out(operator: Actor, bus: Bus) -> None:
    await actions.change_setting(operator, "qr_app_ios_url", "https://apps.example/ios")
    await actions.change_setting(operator, "qr_feedback_url", "https://feedback.example/s/7")
    await actions.change_setting(operator, "hmi_stop_needs_card", False)
    hmi = await bus.get(contract.HMI_SETTINGS)
    assert [(link.key, link.url) for link in hmi.qr_links] == [
        ("feedback", "https://feedback.example/s/7"), ("app_ios", "https://apps.example/ios")]
    assert hmi.stop_needs_card is False


@pytest.mark.parametrize(("name", "value", "says"), [
    ("hmi_language", "de", "de"),
    ("qr_feedback_url", "not a link", "URL"),
    ("station_power_limit_kw", "-5", "greater than or equal to 0"),
    ("station_power_limit_kw", "lots", "number"),
    ("no_such_setting", "1", "unknown setting"),
])
async def test_a_bad_value_is_refused_and_nothing_is_stored(operator: Actor, bus: Bus, name: str, value: str,
                                                             says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        await actions.change_setting(operator, name, value)
    assert await sync_to_async(StationSetting.objects.count)() == 0
    assert await audit() == []


async def test_the_station_limit_is_an_operator_limit_on_the_bus_until_cleared(operator: Actor,
                                                                              bus: Bus) -> None:
    await actions.change_setting(operator, "station_power_limit_kw", "80.5")
    limit = await bus.get(contract.OPERATOR_LIMIT, connector_id=0)
    assert (limit.limit_w, limit.source, limit.expires_at) == (80_500.0, "operator", None)
    await actions.change_setting(operator, "station_power_limit_kw", "")
    assert await bus.get(contract.OPERATOR_LIMIT, connector_id=0) is None
    assert [entry.after for entry in await audit()] == [80.5, None]


# ---- commands to the services -----------------------------------------------------------------

async def test_availability_goes_to_smartw_and_its_answer_is_recorded(operator: Actor, bus: Bus) -> None:
    asked: list[ChangeAvailabilityRequest] = []

    async def smartw(request: ChangeAvailabilityRequest) -> AvailabilityReply:
        asked.append(request)
        return AvailabilityReply(status="Scheduled")

    async with serving("smartw", {contract.AVAILABILITY: smartw}):
        await served(bus, contract.AVAILABILITY)
        outcome = await actions.set_availability(operator, 2, operative=False)
    assert (outcome.done, outcome.status) == (True, "Scheduled")
    assert asked == [ChangeAvailabilityRequest(connector_id=2, operative=False)]
    [entry] = await audit()
    assert (entry.action, entry.target, entry.after, entry.outcome) == (
        "availability", "connector 2", "inoperative", "Scheduled")


async def test_an_unknown_connector_or_a_bad_id_tag_is_refused_before_asking(operator: Actor) -> None:
    with pytest.raises(InvalidInput, match="no connector 9"):
        await actions.set_availability(operator, 9, operative=True)
    with pytest.raises(InvalidInput, match="no connector 0"):
        await actions.stop_charging(operator, 0)
    with pytest.raises(InvalidInput, match="idTag"):
        await actions.start_charging(operator, 1, "HAS SPACE")
    with pytest.raises(InvalidInput, match="idTag"):
        await actions.set_free_mode(operator, True, "X" * 21)
    assert await audit() == []


async def test_a_silent_service_is_not_answered_and_still_audited(operator: Actor,
                                                                  quick_timeouts: None) -> None:
    outcome = await actions.stop_charging(operator, 1)
    assert (outcome.done, outcome.status) == (False, "NotAnswered")
    [entry] = await audit()
    assert entry.outcome.startswith("NotAnswered")


async def test_start_stop_and_free_mode_carry_smartws_answer(operator: Actor, bus: Bus) -> None:
    async def refuse(_request: object) -> CommandResult:
        return CommandResult(accepted=False, reason="no_session")

    async def accept(_request: object) -> CommandResult:
        return CommandResult(accepted=True, reason="stopping")

    async with serving("smartw", {contract.STOP: refuse, contract.START: accept, contract.FREE_MODE: accept}):
        await served(bus, contract.STOP, contract.START, contract.FREE_MODE)
        stopped = await actions.stop_charging(operator, 1)
        started = await actions.start_charging(operator, 1, "CARD-7")
        free = await actions.set_free_mode(operator, True, "SITE-7")
    assert (stopped.done, stopped.status, stopped.detail) == (False, "Rejected", "no_session")
    assert (started.done, started.status) == (True, "Accepted")
    assert free.done
    assert [entry.action for entry in await audit()] == ["stop", "start", "free_mode"]


async def test_the_authorization_key_never_reaches_the_audit_log(operator: Actor, bus: Bus) -> None:
    asked: list[OcppConfigureRequest] = []

    async def ocpp16(request: OcppConfigureRequest) -> OcppConfigureReply:
        asked.append(request)
        return OcppConfigureReply(status="Accepted")

    async with serving("ocpp16", {contract.OCPP_CONFIGURE: ocpp16}):
        await served(bus, contract.OCPP_CONFIGURE)
        outcome = await actions.configure_ocpp(operator, "AuthorizationKey", KEY)
    assert outcome.done and asked[0].value == KEY
    [entry] = await audit()
    assert entry.after == "(hidden)" and "0011" not in str(entry.before) + entry.outcome
    with pytest.raises(InvalidInput, match="NoSuchKey"):
        await actions.configure_ocpp(operator, "NoSuchKey", "1")


async def test_a_self_test_returns_diags_report(operator: Actor, bus: Bus) -> None:
    async def diag(request: SelfTestRequest) -> DiagReport:
        return DiagReport(ok=False, checks=(DiagCheck(kind="meter", subject=request.subject or "all",
                                                      state="missing"),))

    async with serving("diag", {contract.SELF_TEST: diag}):
        await served(bus, contract.SELF_TEST)
        outcome, report = await actions.run_self_test(operator, "connector1")
    assert (outcome.done, outcome.status, outcome.detail) == (True, "Failed", "meter:connector1")
    assert report is not None and report.checks[0].subject == "connector1"


async def test_a_self_test_of_an_unknown_subject_says_so(operator: Actor, bus: Bus) -> None:
    async def diag(_request: SelfTestRequest) -> DiagReport:
        return DiagReport(ok=False, checks=())  # diag's answer: no check has that subject

    async with serving("diag", {contract.SELF_TEST: diag}):
        await served(bus, contract.SELF_TEST)
        outcome, _ = await actions.run_self_test(operator, "connector9")
    assert (outcome.status, outcome.detail) == ("Failed", "no check has the subject 'connector9'")
    assert (await audit())[0].outcome == "Failed: no check has the subject 'connector9'"


# ---- the clock --------------------------------------------------------------------------------

def clock_script(tmp_path: Path, exit_code: int) -> Path:
    """A stand-in for `date -u -s` (a test must not set the machine's clock): records its argument."""
    script = tmp_path / "set-clock"
    script.write_text(f'#!/bin/sh\necho "$@" > "{tmp_path}/asked"\necho refused >&2\nexit {exit_code}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


async def test_the_clock_is_not_touched_unless_a_command_is_configured(operator: Actor,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    monkeypatch.delenv(actions.SET_CLOCK_ENV, raising=False)
    when = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
    assert (await actions.set_clock(operator, when)).status == "NotConfigured"

    monkeypatch.setenv(actions.SET_CLOCK_ENV, f"{clock_script(tmp_path, 0)} --utc")
    outcome = await actions.set_clock(operator, when)
    assert outcome.done and (tmp_path / "asked").read_text().split() == ["--utc", "2026-11-27T12:30:00+00:00"]

    monkeypatch.setenv(actions.SET_CLOCK_ENV, str(clock_script(tmp_path, 3)))
    failed = await actions.set_clock(operator, when)
    assert (failed.done, failed.status) == (False, "Failed") and "exit code 3: refused" in failed.detail
    with pytest.raises(InvalidInput, match="time zone"):
        await actions.set_clock(operator, datetime(2026, 11, 27, 12, 30))
    assert [entry.outcome.split(":")[0] for entry in await audit()] == ["NotConfigured", "Accepted", "Failed"]


# ---- publishing -------------------------------------------------------------------------------

async def test_settings_come_back_after_redis_lost_them_but_a_cli_limit_is_kept(
        operator: Actor, bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    from bus.messages import ChargingLimit, LimitSource
    from webapp.station import settings_publisher

    await actions.change_setting(operator, "station_power_limit_kw", "50")
    monkeypatch.setattr(settings_publisher, "REFRESH_S", 0.05)
    stopping = asyncio.Event()
    loop = asyncio.create_task(settings_publisher.keep_published(Bus("web"), stopping))
    try:
        await bus.redis.flushdb()  # what a restarted Redis holds
        await async_wait_until(lambda: bus.get(contract.HMI_SETTINGS), timeout_s=5, what="HMI settings back")
        await async_wait_until(lambda: bus.get(contract.OPERATOR_LIMIT, connector_id=0), timeout_s=5,
                               what="the station limit back")
        temporary = ChargingLimit(connector_id=0, limit_w=11_000, source=LimitSource.OPERATOR)
        await bus.set(contract.OPERATOR_LIMIT, temporary, connector_id=0)  # `manage.py limit set --station`
        for _ in range(3):  # three refreshes later (each rewrites the HMI settings with a new time) ...
            before = (await bus.get(contract.HMI_SETTINGS)).at

            async def refreshed(since: datetime = before) -> bool:
                return (await bus.get(contract.HMI_SETTINGS)).at > since
            await async_wait_until(refreshed, timeout_s=5, what="a refresh")
        assert (await bus.get(contract.OPERATOR_LIMIT, connector_id=0)).limit_w == 11_000  # ... still there
    finally:
        stopping.set()
        await loop
