"""Availability (ChangeAvailability) and free mode in smartw: the rules, the database row that
keeps them, what the connectors then show and refuse, and `manage.py station` over the real bus.

The connectors are smartw's own runtime objects; a running session is one set on them, as the
start sequence sets it. The hardware is never reached: every path here refuses or waits before
a contactor would close (tests/e2e/test_availability.py charges for real). Every test may keep
a change, so every one has the test database (transactional: the async ORM writes from asgiref's
worker thread); a database that refuses writes is a real one with a trigger that aborts them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from django.db import DatabaseError, connection

from bus import Bus, contract
from bus.enums import AuthorizationStatus, ConnectorErrorCode, ConnectorStatus, Standard, StartSource
from bus.messages import (
    AuthorizeReply,
    AuthorizeRequest,
    ChangeAvailabilityRequest,
    FreeModeRequest,
    StartRequest,
    utcnow,
)
from webapp.env import REPO_ROOT
from webapp.station.models import RuntimeSettings
from workers.common.station_config import ConnectorConfig
from workers.drivers.controller import ControllerSnapshot, EvState
from workers.smartw.availability import (
    DEFAULT_FREE_MODE_ID_TAG,
    NOT_SAVED,
    Availability,
    AvailabilitySettings,
    SettingsRow,
)
from workers.smartw.connector import ActiveSession, ConnectorRuntime, PendingStart
from workers.smartw.requests import Requests
from workers.smartw.sessions import SessionControl
from workers.smartw.status import ESTOP, UNAVAILABLE, Fault
from workers.smartw.timeline import SessionTimeline

pytestmark = pytest.mark.django_db(transaction=True)

CARD = "0A00B1C2D3"
TABLE = RuntimeSettings._meta.db_table


def connector_config(connector_id: int, standard: Standard) -> ConnectorConfig:
    return ConnectorConfig.model_validate({
        "id": connector_id, "standard": standard, "max_power_kw": 22 if standard is Standard.TYPE2 else 150,
        "contactor_coil": connector_id - 1,
        "meter": {"bus": "meters", "device_id": connector_id, "model": "sdm630"},
        "controller": {"bus": "controllers", "device_id": 20 + connector_id},
    })


def make_connectors() -> dict[int, ConnectorRuntime]:
    return {1: ConnectorRuntime(connector_config(1, Standard.CCS)),
            2: ConnectorRuntime(connector_config(2, Standard.TYPE2))}


def plug(connector: ConnectorRuntime, ev_state: EvState = EvState.C) -> None:
    connector.controller = ControllerSnapshot(ev_state=ev_state, soc=None, target_soc=None,
                                              ev_max_power_w=11_000, error_code=0)


def run_session(connector: ConnectorRuntime) -> None:
    plug(connector)
    connector.session = ActiveSession(session_id="s1", id_tag=CARD, started_at=utcnow(), meter_start_wh=0.0)
    connector.allocated_w = 7_000


def end_session(connector: ConnectorRuntime) -> None:
    """What SessionControl.stop leaves behind: no session, Finishing while the EV is plugged."""
    connector.session, connector.allocated_w, connector.finishing = None, 0.0, connector.plugged


def status(connector: ConnectorRuntime, station_fault: Fault | None = None) -> ConnectorStatus:
    return connector.snapshot(station_fault).status


@pytest.fixture
def connectors() -> dict[int, ConnectorRuntime]:
    return make_connectors()


@pytest.fixture
def availability(connectors: dict[int, ConnectorRuntime]) -> Availability:
    return Availability(SettingsRow(), connectors)


def execute(*statements: str) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@pytest.fixture
def refusing_database(transactional_db: None) -> Iterator[None]:
    """The settings table aborts every INSERT and UPDATE, as a full disk or a broken database would."""
    execute(*(f"CREATE TRIGGER refuse_{event} BEFORE {event} ON {TABLE} "
              "BEGIN SELECT RAISE(ABORT, 'write refused'); END" for event in ("INSERT", "UPDATE")))
    try:
        yield
    finally:
        execute("DROP TRIGGER refuse_INSERT", "DROP TRIGGER refuse_UPDATE")


@pytest.fixture
def missing_table(transactional_db: None) -> Iterator[None]:
    """The settings table is gone, as in a database that cannot be read."""
    execute(f"ALTER TABLE {TABLE} RENAME TO hidden_settings")
    try:
        yield
    finally:
        execute(f"ALTER TABLE hidden_settings RENAME TO {TABLE}")


def change(connector_id: int, operative: bool) -> ChangeAvailabilityRequest:
    return ChangeAvailabilityRequest(connector_id=connector_id, operative=operative)


# ---- ChangeAvailability rules -------------------------------------------------------------


async def test_an_idle_connector_set_inoperative_is_unavailable_and_says_so(
        availability: Availability, connectors: dict[int, ConnectorRuntime]) -> None:
    reply = await availability.change(change(2, False))

    assert reply.status == "Accepted"
    state = connectors[2].snapshot(None)
    assert (state.status, state.error_code, state.info, state.operative) == (
        ConnectorStatus.UNAVAILABLE, ConnectorErrorCode.NO_ERROR, UNAVAILABLE, False)
    assert status(connectors[1]) is ConnectorStatus.AVAILABLE and connectors[1].snapshot(None).operative


async def test_a_plugged_idle_connector_is_unavailable_too_and_loses_its_waiting_start(
        availability: Availability, connectors: dict[int, ConnectorRuntime]) -> None:
    plug(connectors[2], EvState.B)
    connectors[2].pending = PendingStart(id_tag=None)

    assert (await availability.change(change(2, False))).status == "Accepted"

    assert connectors[2].pending is None
    assert status(connectors[2]) is ConnectorStatus.UNAVAILABLE


async def test_inoperative_during_a_session_is_scheduled_and_applies_when_the_session_ends(
        availability: Availability, connectors: dict[int, ConnectorRuntime]) -> None:
    run_session(connectors[2])

    assert (await availability.change(change(2, False))).status == "Scheduled"
    assert connectors[2].session is not None, "the session is never stopped by it"
    assert status(connectors[2]) is ConnectorStatus.CHARGING
    assert connectors[2].snapshot(None).operative is False

    end_session(connectors[2])  # EV still plugged: straight to Unavailable, not Finishing (OCPP C8/F8)
    assert status(connectors[2]) is ConnectorStatus.UNAVAILABLE
    connectors[2].controller = None
    assert status(connectors[2]) is ConnectorStatus.UNAVAILABLE


async def test_operative_again_clears_a_scheduled_change(
        availability: Availability, connectors: dict[int, ConnectorRuntime]) -> None:
    run_session(connectors[2])
    assert (await availability.change(change(2, False))).status == "Scheduled"

    assert (await availability.change(change(2, True))).status == "Accepted"
    end_session(connectors[2])
    assert status(connectors[2]) is ConnectorStatus.FINISHING
    connectors[2].controller, connectors[2].finishing = None, False
    assert status(connectors[2]) is ConnectorStatus.AVAILABLE


async def test_a_start_in_progress_counts_as_a_session(
        availability: Availability, connectors: dict[int, ConnectorRuntime]) -> None:
    async with connectors[2].lock:  # SessionControl.start holds it until the session is recorded
        assert (await availability.change(change(2, False))).status == "Scheduled"


async def test_an_unknown_connector_is_rejected_and_nothing_changes(availability: Availability) -> None:
    assert (await availability.change(change(7, False))).status == "Rejected"
    assert availability.settings == AvailabilitySettings()
    assert not await RuntimeSettings.objects.aexists()


async def test_asking_for_the_state_it_is_in_is_accepted(
        availability: Availability, connectors: dict[int, ConnectorRuntime]) -> None:
    assert (await availability.change(change(1, True))).status == "Accepted"
    assert (await availability.change(change(1, False))).status == "Accepted"
    assert (await availability.change(change(1, False))).status == "Accepted"
    assert status(connectors[1]) is ConnectorStatus.UNAVAILABLE


async def test_the_station_inoperative_makes_every_connector_unavailable_after_its_session(
        availability: Availability, connectors: dict[int, ConnectorRuntime]) -> None:
    run_session(connectors[1])

    assert (await availability.change(change(0, False))).status == "Scheduled"
    assert status(connectors[2]) is ConnectorStatus.UNAVAILABLE  # idle: at once
    assert status(connectors[1]) is ConnectorStatus.CHARGING
    assert availability.station_status(None) is ConnectorStatus.AVAILABLE  # a session still runs

    end_session(connectors[1])
    assert status(connectors[1]) is ConnectorStatus.UNAVAILABLE
    assert availability.station_status(None) is ConnectorStatus.UNAVAILABLE


async def test_a_connectors_own_inoperative_outlives_the_station_going_operative_again(
        availability: Availability, connectors: dict[int, ConnectorRuntime]) -> None:
    await availability.change(change(0, False))
    assert (await availability.change(change(2, True))).status == "Accepted"
    assert status(connectors[2]) is ConnectorStatus.UNAVAILABLE, "the station's own still holds"
    await availability.change(change(1, False))

    assert (await availability.change(change(0, True))).status == "Accepted"
    assert (status(connectors[1]), status(connectors[2])) == (ConnectorStatus.UNAVAILABLE,
                                                              ConnectorStatus.AVAILABLE)
    assert availability.station_status(None) is ConnectorStatus.AVAILABLE


async def test_a_fault_shows_as_faulted_even_when_inoperative(
        availability: Availability, connectors: dict[int, ConnectorRuntime]) -> None:
    await availability.change(change(0, False))
    assert status(connectors[1], ESTOP) is ConnectorStatus.FAULTED
    assert availability.station_status(ESTOP) is ConnectorStatus.FAULTED


# ---- persistence ------------------------------------------------------------------------


async def test_availability_and_free_mode_survive_a_restart(availability: Availability) -> None:
    await availability.change(change(2, False))
    await availability.change(change(0, False))
    await availability.set_free_mode(FreeModeRequest(enabled=True, id_tag="SITE-7"))

    restarted = make_connectors()
    again = Availability(SettingsRow(), restarted)
    assert again.settings == AvailabilitySettings() and restarted[2].operative, "factory state until loaded"
    await again.load()

    assert again.settings == AvailabilitySettings(station_operative=False, inoperative_connectors={2},
                                                  free_mode=True, free_mode_id_tag="SITE-7")
    assert not restarted[1].operative and not restarted[2].operative
    assert status(restarted[2]) is ConnectorStatus.UNAVAILABLE, "no Available flash after a restart"


async def test_loading_cancels_a_start_waiting_on_a_connector_kept_inoperative(
        availability: Availability, connectors: dict[int, ConnectorRuntime]) -> None:
    await RuntimeSettings.objects.acreate(inoperative_connectors=[2])
    connectors[2].pending = PendingStart(id_tag=None)

    await availability.load()

    assert connectors[2].pending is None and not connectors[2].operative and connectors[1].operative


@pytest.mark.parametrize("stored", [
    {"inoperative_connectors": "2"},
    {"inoperative_connectors": {"2": True}},
    {"inoperative_connectors": [1, "2"]},
    {"inoperative_connectors": [True]},
    {"inoperative_connectors": [0]},
    {"inoperative_connectors": [-1]},
    {"inoperative_connectors": [1.5]},
    {"free_mode_id_tag": ""},
    {"free_mode_id_tag": "X" * 21},  # SQLite does not enforce a CharField's max_length
], ids=["text", "object", "text-in-list", "bool", "station", "negative", "fraction", "empty-tag",
        "long-tag"])
async def test_an_unreadable_row_gives_the_factory_state(
        stored: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    await RuntimeSettings.objects.acreate(station_operative=False, free_mode=True, **stored)

    assert await SettingsRow().load() == AvailabilitySettings()
    assert [r.message for r in caplog.records if r.levelno == logging.ERROR and "unreadable" in r.message]


async def test_a_missing_row_is_the_factory_state_quietly(caplog: pytest.LogCaptureFixture) -> None:
    assert await SettingsRow().load() == AvailabilitySettings()
    assert caplog.text == ""


async def test_a_database_that_cannot_be_read_fails_the_load(
        availability: Availability, missing_table: None) -> None:
    """smartw's start then fails (and it is restarted) instead of guessing the availability."""
    with pytest.raises(DatabaseError):
        await availability.load()
    assert availability.settings == AvailabilitySettings()


async def test_a_change_the_database_refuses_is_rejected_and_undone(
        availability: Availability, connectors: dict[int, ConnectorRuntime], refusing_database: None,
        caplog: pytest.LogCaptureFixture) -> None:
    assert (await availability.change(change(2, False))).status == "Rejected"
    assert connectors[2].operative and status(connectors[2]) is ConnectorStatus.AVAILABLE
    result = await availability.set_free_mode(FreeModeRequest(enabled=True))
    assert (result.accepted, result.reason) == (False, NOT_SAVED)
    assert availability.free_mode_id_tag is None
    assert availability.settings == AvailabilitySettings()
    assert not await RuntimeSettings.objects.aexists()
    assert "change refused" in caplog.text


async def test_the_row_is_replaced_whole() -> None:
    store = SettingsRow()
    await store.save(AvailabilitySettings(inoperative_connectors=frozenset({3, 1, 2})))
    await store.save(AvailabilitySettings(free_mode=True, free_mode_id_tag="SITE-7"))

    assert await store.load() == AvailabilitySettings(free_mode=True, free_mode_id_tag="SITE-7")
    rows = [row async for row in RuntimeSettings.objects.values()]
    assert rows == [{"id": RuntimeSettings.ONE, "station_operative": True, "inoperative_connectors": [],
                     "free_mode": True, "free_mode_id_tag": "SITE-7"}]


async def test_connectors_are_stored_as_a_sorted_list() -> None:
    await SettingsRow().save(AvailabilitySettings(inoperative_connectors=frozenset({3, 1, 2})))
    row = await RuntimeSettings.objects.aget()
    assert row.inoperative_connectors == [1, 2, 3]


# ---- free mode --------------------------------------------------------------------------


async def test_free_mode_uses_freemode_by_default_and_keeps_the_last_id_tag(
        availability: Availability) -> None:
    assert availability.free_mode_id_tag is None
    result = await availability.set_free_mode(FreeModeRequest(enabled=True))
    assert (result.accepted, result.reason) == (True, "free_mode_on")
    assert availability.free_mode_id_tag == DEFAULT_FREE_MODE_ID_TAG

    await availability.set_free_mode(FreeModeRequest(enabled=True, id_tag="SITE-7"))
    await availability.set_free_mode(FreeModeRequest(enabled=False))
    assert availability.free_mode_id_tag is None
    await availability.set_free_mode(FreeModeRequest(enabled=True))
    assert availability.free_mode_id_tag == "SITE-7"


# ---- starts on an inoperative connector, free starts ---------------------------------------------


class NoHardware:
    """Every path tested here refuses or waits before the hardware would be touched."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the hardware was used ({name})")


@pytest.fixture
def requests(bus: Bus, availability: Availability, connectors: dict[int, ConnectorRuntime]) -> Requests:
    control = SessionControl(bus, NoHardware(), lambda: None, SessionTimeline())  # type: ignore[arg-type]
    return Requests(bus, connectors, control, availability)


@pytest.fixture
async def csms_accepts(bus: Bus) -> AsyncIterator[list[str]]:
    """ocpp16's part, played on the real bus: every idTag is accepted; the ids asked are recorded."""
    asked: list[str] = []

    async def authorize(request: AuthorizeRequest) -> AuthorizeReply:
        asked.append(request.id_tag)
        return AuthorizeReply(status=AuthorizationStatus.ACCEPTED)

    stop = asyncio.Event()
    server = asyncio.create_task(bus.serve(contract.AUTHORIZE, authorize, stop=stop))
    try:
        yield asked
    finally:
        stop.set()
        await server


@pytest.mark.parametrize("request_", [
    StartRequest(connector_id=2, source=StartSource.HMI),
    StartRequest(connector_id=2, id_tag="REMOTE1", source=StartSource.REMOTE, authorized=True),
    StartRequest(connector_id=2, id_tag=CARD, source=StartSource.RFID),
], ids=["hmi", "remote", "card"])
async def test_an_inoperative_connector_refuses_every_start(
        requests: Requests, availability: Availability, connectors: dict[int, ConnectorRuntime],
        request_: StartRequest) -> None:
    plug(connectors[2], EvState.B)
    await availability.change(change(2, False))

    result = await requests.start_command(request_)

    assert (result.accepted, result.reason) == (False, UNAVAILABLE)
    assert connectors[2].pending is None


async def test_a_card_passes_an_inoperative_connector_by_and_waits_for_an_operative_one(
        requests: Requests, availability: Availability, connectors: dict[int, ConnectorRuntime],
        csms_accepts: list[str]) -> None:
    plug(connectors[2], EvState.B)
    await availability.change(change(2, False))

    await requests.card(CARD)
    assert csms_accepts == [CARD]
    assert requests.pending_card is not None and requests.pending_card.id_tag == CARD
    await requests.ev_plugged(connectors[2])  # inoperative: the card keeps waiting
    assert requests.pending_card is not None and connectors[2].session is None


async def test_free_mode_starts_from_the_hmi_button_without_a_card(
        requests: Requests, availability: Availability, connectors: dict[int, ConnectorRuntime]) -> None:
    result = await requests.start_command(StartRequest(connector_id=2, source=StartSource.HMI))
    assert (result.accepted, result.reason) == (True, "present_card")
    connectors[2].pending = None

    await availability.set_free_mode(FreeModeRequest(enabled=True))
    result = await requests.start_command(StartRequest(connector_id=2, source=StartSource.HMI))

    assert (result.accepted, result.reason) == (True, "plug_in_ev")  # no EV yet: it starts on plug
    assert connectors[2].pending is not None and connectors[2].pending.id_tag == DEFAULT_FREE_MODE_ID_TAG


async def test_free_mode_starts_nothing_on_an_inoperative_connector(
        requests: Requests, availability: Availability, connectors: dict[int, ConnectorRuntime]) -> None:
    await availability.set_free_mode(FreeModeRequest(enabled=True))
    await availability.change(change(0, False))
    plug(connectors[2], EvState.B)

    await requests.ev_plugged(connectors[2])

    assert connectors[2].session is None and connectors[2].pending is None
    assert status(connectors[2]) is ConnectorStatus.UNAVAILABLE


# ---- manage.py station ------------------------------------------------------------------


@pytest.fixture
async def served(bus: Bus, availability: Availability) -> AsyncIterator[Availability]:
    """smartw's two commands served on the real bus from `availability`."""
    stop = asyncio.Event()
    servers = [asyncio.create_task(bus.serve(contract.AVAILABILITY, availability.change, stop=stop)),
               asyncio.create_task(bus.serve(contract.FREE_MODE, availability.set_free_mode, stop=stop))]
    try:
        yield availability
    finally:
        stop.set()
        await asyncio.gather(*servers)


async def manage_station(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "manage.py", "station", *args], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        env={**os.environ, "STATION_CONFIG": str(REPO_ROOT / "ops" / "station.sim.toml")})


async def test_the_cli_sets_availability_and_free_mode(served: Availability,
                                                       connectors: dict[int, ConnectorRuntime]) -> None:
    run_session(connectors[2])
    done = await manage_station("availability", "--connector", "2", "inoperative")
    assert (done.returncode, done.stdout.strip()) == (0, "connector 2 inoperative: Scheduled"), done.stderr
    done = await manage_station("availability", "--station", "inoperative")
    assert (done.returncode, done.stdout.strip()) == (0, "station inoperative: Scheduled"), done.stderr
    done = await manage_station("free-mode", "on", "--id-tag", "SITE-7")
    assert (done.returncode, done.stdout.strip()) == (0, "free mode on: done"), done.stderr

    assert served.settings == AvailabilitySettings(station_operative=False, inoperative_connectors={2},
                                                   free_mode=True, free_mode_id_tag="SITE-7")


@pytest.mark.parametrize("args", [
    ("availability", "--connector", "9", "inoperative"),
    ("availability", "inoperative"),
    ("availability", "--station", "--connector", "1", "operative"),
    ("availability", "--connector", "1", "sideways"),
    ("free-mode", "on", "--id-tag", "X" * 21),
    ("free-mode", "on", "--id-tag", "TWO WORDS"),
    ("free-mode", "off", "--id-tag", "SITE-7"),
])
async def test_the_cli_refuses_bad_usage_with_exit_2(args: tuple[str, ...]) -> None:
    done = await manage_station(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)


async def test_the_cli_exits_1_when_smartw_rejects_or_does_not_answer(
        bus: Bus, availability: Availability, refusing_database: None) -> None:
    stop = asyncio.Event()
    server = asyncio.create_task(bus.serve(contract.AVAILABILITY, availability.change, stop=stop))
    try:
        done = await manage_station("availability", "--connector", "1", "inoperative")
    finally:
        stop.set()
        await server
    assert done.returncode == 1 and "Rejected" in done.stderr, (done.stdout, done.stderr)

    done = await manage_station("free-mode", "off")  # nobody serves it
    assert done.returncode == 1 and "is smartw running" in done.stderr, (done.stdout, done.stderr)
