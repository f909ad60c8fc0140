"""Reservations in smartw: what a held connector shows, who may start there, which reservation a
session uses, and the whole path in the real smartw process against the simulator.

ocpp16's part is played on the real bus: the test writes contract.RESERVATIONS as ocpp16 does
and answers AUTHORIZE (with a parentIdTag per idTag where a group matters). The in-process
tests stop before any contactor would close (NoHardware); the last test charges for real.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from bus import Bus, contract
from bus.enums import AuthorizationStatus, ConnectorStatus, Standard, StartSource
from bus.messages import (
    AuthorizeReply,
    AuthorizeRequest,
    ChangeAvailabilityRequest,
    FreeModeRequest,
    MeterReading,
    ReservationHold,
    Reservations,
    SessionStarted,
    SimAction,
    StartRequest,
    utcnow,
)
from tests.sim.processes import ServiceProcess, SimStation
from tests.support.database import sqlite_url
from tests.support.waiting import async_wait_until
from workers.common.station_config import ConnectorConfig
from workers.drivers.controller import ControllerSnapshot, EvState
from workers.smartw.availability import Availability, SettingsRow
from workers.smartw.connector import ActiveSession, ConnectorRuntime
from workers.smartw.requests import Requests
from workers.smartw.reservations import ReservationBook
from workers.smartw.sessions import SessionControl
from workers.smartw.status import CONTROLLER_ERROR, RESERVED
from workers.smartw.timeline import SessionTimeline

OWNER = "OWNER1"  # the idTag a reservation is made for
STRANGER = "STRANGER1"
CHILD = "CHILD1"  # no reservation of its own; Authorize says it belongs to GROUP
GROUP = "GROUP1"


def connector_config(connector_id: int, standard: Standard) -> ConnectorConfig:
    return ConnectorConfig.model_validate({
        "id": connector_id, "standard": standard, "max_power_kw": 22 if standard is Standard.TYPE2 else 150,
        "contactor_coil": connector_id - 1,
        "meter": {"bus": "meters", "device_id": connector_id, "model": "sdm630"},
        "controller": {"bus": "controllers", "device_id": 20 + connector_id},
    })


def hold(reservation_id: int, connector_id: int, id_tag: str = OWNER, *, parent: str | None = None,
         expires_in_s: float = 600.0) -> ReservationHold:
    return ReservationHold(reservation_id=reservation_id, connector_id=connector_id, id_tag=id_tag,
                           parent_id_tag=parent, expires_at=utcnow() + timedelta(seconds=expires_in_s))


def plug(connector: ConnectorRuntime) -> None:
    connector.controller = ControllerSnapshot(ev_state=EvState.B, soc=None, target_soc=None,
                                              ev_max_power_w=11_000, error_code=0)


def run_session(connector: ConnectorRuntime) -> None:
    plug(connector)
    connector.session = ActiveSession(session_id="s1", id_tag=STRANGER, started_at=utcnow(),
                                      meter_start_wh=0.0)


def status(connector: ConnectorRuntime) -> ConnectorStatus:
    return connector.snapshot(None).status


class NoHardware:
    """Every in-process path here refuses or waits for the EV before the hardware would be used."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the hardware was used ({name})")


@pytest.fixture
def connectors() -> dict[int, ConnectorRuntime]:
    return {1: ConnectorRuntime(connector_config(1, Standard.CCS)),
            2: ConnectorRuntime(connector_config(2, Standard.TYPE2))}


@pytest.fixture
def book(connectors: dict[int, ConnectorRuntime]) -> ReservationBook:
    return ReservationBook(connectors)


@pytest.fixture
def availability(connectors: dict[int, ConnectorRuntime]) -> Availability:
    return Availability(SettingsRow(), connectors)


@pytest.fixture
def requests(bus: Bus, book: ReservationBook, availability: Availability,
             connectors: dict[int, ConnectorRuntime]) -> Requests:
    control = SessionControl(bus, NoHardware(), lambda: None, SessionTimeline(),  # type: ignore[arg-type]
                             reservations=book)
    return Requests(bus, connectors, control, availability)


@dataclass
class Ocpp16Authorize:
    """ocpp16's AUTHORIZE, played on the real bus: every idTag is accepted; CHILD is of GROUP."""

    asked: list[str] = field(default_factory=list)
    parents: dict[str, str] = field(default_factory=lambda: {CHILD: GROUP})

    async def authorize(self, request: AuthorizeRequest) -> AuthorizeReply:
        self.asked.append(request.id_tag)
        return AuthorizeReply(status=AuthorizationStatus.ACCEPTED,
                              parent_id_tag=self.parents.get(request.id_tag))


@pytest.fixture
async def csms(bus: Bus) -> AsyncIterator[Ocpp16Authorize]:
    fake, stop = Ocpp16Authorize(), asyncio.Event()
    server = asyncio.create_task(bus.serve(contract.AUTHORIZE, fake.authorize, stop=stop))
    try:
        yield fake
    finally:
        stop.set()
        await server


async def publish(bus: Bus, book: ReservationBook, *holds: ReservationHold) -> None:
    """What ocpp16 writes, then smartw's next cycle reading it."""
    await bus.set(contract.RESERVATIONS, Reservations(holds=holds))
    await book.refresh(bus)


async def meter_ready(bus: Bus, connector_id: int) -> None:
    await bus.set(contract.METER, MeterReading(meter=f"connector{connector_id}", energy_wh=1_000, power_w=0),
                  meter=f"connector{connector_id}")


def remote(connector_id: int, id_tag: str) -> StartRequest:
    return StartRequest(connector_id=connector_id, id_tag=id_tag, source=StartSource.REMOTE, authorized=True)


# ---- what a held connector shows ------------------------------------------------------------


async def test_a_reserved_connector_shows_reserved_until_its_expiry_then_available(
        bus: Bus, book: ReservationBook, connectors: dict[int, ConnectorRuntime]) -> None:
    """OCTT TC_047_CS from smartw's side: the entry lapses at its own expiry, even though
    the key still holds it (ocpp16 may be down)."""
    await publish(bus, book, hold(7, 1, expires_in_s=0.5))
    state = connectors[1].snapshot(None)
    assert (state.status, state.info) == (ConnectorStatus.RESERVED, RESERVED)
    assert status(connectors[2]) is ConnectorStatus.AVAILABLE

    async def available() -> bool:
        await book.refresh(bus)
        return status(connectors[1]) is ConnectorStatus.AVAILABLE
    await async_wait_until(available, timeout_s=3, what="the reservation to lapse")
    assert await bus.get(contract.RESERVATIONS) is not None, "smartw never writes ocpp16's key"


async def test_a_plugged_reserved_connector_is_preparing_and_a_faulted_one_faulted(
        bus: Bus, book: ReservationBook, connectors: dict[int, ConnectorRuntime]) -> None:
    await publish(bus, book, hold(7, 1), hold(8, 2, "OTHER1"))
    plug(connectors[1])
    connectors[2].controller_fault = CONTROLLER_ERROR

    assert status(connectors[1]) is ConnectorStatus.PREPARING
    assert status(connectors[2]) is ConnectorStatus.FAULTED


async def test_a_station_reservation_holds_the_last_free_connector(
        bus: Bus, book: ReservationBook, connectors: dict[int, ConnectorRuntime]) -> None:
    """OCTT TC_049_CS: connector 0 keeps one connector free for its idTag."""
    await publish(bus, book, hold(9, 0))
    assert [status(c) for c in connectors.values()] == [ConnectorStatus.AVAILABLE] * 2

    run_session(connectors[1])
    await book.refresh(bus)
    assert status(connectors[2]) is ConnectorStatus.RESERVED

    connectors[1].session, connectors[1].controller = None, None
    await publish(bus, book, hold(9, 0), hold(10, 0, "OTHER1"))
    assert [status(c) for c in connectors.values()] == [ConnectorStatus.RESERVED] * 2


async def test_an_unreadable_key_honours_no_reservation_and_says_so_once(
        bus: Bus, book: ReservationBook, connectors: dict[int, ConnectorRuntime],
        caplog: pytest.LogCaptureFixture) -> None:
    await publish(bus, book, hold(7, 1))
    await bus.redis.set(bus.names.key(contract.RESERVATIONS.format()), '{"holds": [{"reservation_id": "x"}]}')

    await book.refresh(bus)
    await book.refresh(bus)

    assert status(connectors[1]) is ConnectorStatus.AVAILABLE
    assert len([r for r in caplog.records if r.levelno == logging.ERROR and "unreadable" in r.message]) == 1


# ---- who may start ------------------------------------------------------------------------


async def test_another_idtag_is_refused_on_a_reserved_connector_without_an_authorize(
        bus: Bus, book: ReservationBook, requests: Requests, csms: Ocpp16Authorize,
        connectors: dict[int, ConnectorRuntime]) -> None:
    """OCTT TC_046_2_CS: only the reservation's idTag charges there; the others are told why."""
    await publish(bus, book, hold(7, 1))

    card = StartRequest(connector_id=1, id_tag=STRANGER, source=StartSource.RFID)
    for request in (remote(1, STRANGER), card):
        result = await requests.start_command(request)
        assert (result.accepted, result.reason) == (False, RESERVED)
    assert csms.asked == [] and connectors[1].pending is None
    assert (await requests.start_command(remote(2, STRANGER))).accepted, "the other connector is free"


async def test_the_reserving_idtag_starts_there_in_any_case_and_waits_for_its_ev(
        bus: Bus, book: ReservationBook, requests: Requests, connectors: dict[int, ConnectorRuntime]) -> None:
    await publish(bus, book, hold(7, 1))

    result = await requests.start_command(remote(1, OWNER.lower()))

    assert (result.accepted, result.reason) == (True, "plug_in_ev")
    assert connectors[1].pending is not None and connectors[1].pending.id_tag == OWNER.lower()
    assert status(connectors[1]) is ConnectorStatus.PREPARING  # OCPP G2
    assert book.reservation_for(connectors[1], OWNER.lower(), None) == 7


@pytest.mark.django_db(transaction=True)  # the availability change is kept
async def test_a_card_of_another_idtag_is_not_even_authorized_when_only_reserved_connectors_are_left(
        bus: Bus, book: ReservationBook, requests: Requests, availability: Availability,
        csms: Ocpp16Authorize, connectors: dict[int, ConnectorRuntime]) -> None:
    """OCTT TC_046_1_CS steps 5-8: the other connectors are Unavailable; a stranger's card sends
    no Authorize; the owner's card is authorized and its connector waits for the EV (Preparing)."""
    await availability.change(ChangeAvailabilityRequest(connector_id=2, operative=False))
    await publish(bus, book, hold(7, 1))

    await requests.card(STRANGER)
    assert csms.asked == [] and requests.pending_card is None

    await requests.card(OWNER)
    assert csms.asked == [OWNER]
    assert connectors[1].pending is not None and connectors[1].pending.id_tag == OWNER
    assert status(connectors[1]) is ConnectorStatus.PREPARING


async def test_a_waiting_card_does_not_start_on_a_connector_reserved_for_another(
        bus: Bus, book: ReservationBook, requests: Requests, csms: Ocpp16Authorize,
        connectors: dict[int, ConnectorRuntime]) -> None:
    await publish(bus, book, hold(7, 1))
    await requests.card(STRANGER)  # connector 2 is free: authorized, waits for an EV
    assert requests.pending_card is not None

    await meter_ready(bus, 1)  # a start would reach the hardware (NoHardware fails the test)
    plug(connectors[1])
    await requests.ev_plugged(connectors[1])

    assert requests.pending_card is not None and connectors[1].session is None


@pytest.mark.django_db(transaction=True)  # free mode is kept
async def test_free_mode_does_not_start_on_a_connector_reserved_for_another(
        bus: Bus, book: ReservationBook, requests: Requests, availability: Availability,
        connectors: dict[int, ConnectorRuntime]) -> None:
    await availability.set_free_mode(FreeModeRequest(enabled=True))
    await publish(bus, book, hold(7, 1))
    await meter_ready(bus, 1)  # a start would reach the hardware (NoHardware fails the test)
    plug(connectors[1])

    await requests.ev_plugged(connectors[1])

    assert connectors[1].session is None and connectors[1].pending is None


async def test_an_idtag_of_the_reservations_group_starts_after_authorize_tells_its_group(
        bus: Bus, book: ReservationBook, requests: Requests, csms: Ocpp16Authorize,
        connectors: dict[int, ConnectorRuntime]) -> None:
    """OCTT TC_053_1_CS (card) and TC_053_2_CS (remote): a remote start needs no Authorize, except where only
    the idTag's group (parentIdTag) can admit it."""
    await publish(bus, book, hold(7, 1, parent=GROUP.lower()))

    refused = await requests.start_command(remote(1, STRANGER))
    assert (refused.accepted, refused.reason) == (False, RESERVED)
    accepted = await requests.start_command(remote(1, CHILD))
    assert (accepted.accepted, accepted.reason) == (True, "plug_in_ev")
    assert csms.asked == [STRANGER, CHILD]
    assert connectors[1].pending is not None and connectors[1].pending.parent_id_tag == GROUP
    assert book.reservation_for(connectors[1], CHILD, GROUP) == 7

    connectors[1].pending = None
    await requests.card(CHILD)
    assert connectors[1].pending is not None and connectors[1].pending.id_tag == CHILD


async def test_a_station_reservation_keeps_the_last_free_connector_for_its_idtag(
        bus: Bus, book: ReservationBook, requests: Requests, connectors: dict[int, ConnectorRuntime]) -> None:
    """OCTT TC_049_CS: with connector 1 busy, connector 2 starts only the reservation's idTag;
    its session uses the connector-0 reservation."""
    await publish(bus, book, hold(9, 0))
    run_session(connectors[1])
    await book.refresh(bus)

    refused = await requests.start_command(remote(2, STRANGER))
    assert (refused.accepted, refused.reason) == (False, RESERVED)
    assert (await requests.start_command(remote(2, OWNER))).accepted
    assert book.reservation_for(connectors[2], OWNER, None) == 9


async def test_a_session_uses_the_connectors_own_reservation_before_a_station_one(
        bus: Bus, book: ReservationBook, connectors: dict[int, ConnectorRuntime]) -> None:
    await publish(bus, book, hold(9, 0), hold(7, 1))

    assert book.reservation_for(connectors[1], OWNER, None) == 7
    assert book.reservation_for(connectors[2], OWNER, None) == 9, "connector 0's: on any connector"
    assert book.reservation_for(connectors[2], STRANGER, None) is None

    book.used(9)
    await book.refresh(bus)
    assert book.reservation_for(connectors[2], OWNER, None) is None, "a used one is spent"


# ---- the real smartw process -----------------------------------------------------------------


@pytest.fixture
def smartw(sim_station: SimStation, service_db: Path, tmp_path: Path) -> Iterator[None]:
    env = {**sim_station.env, "DATABASE_URL": sqlite_url(service_db)}
    children = [ServiceProcess(name, env, tmp_path / f"{name}.log")
                for name in ("workers.counters", "workers.smartw")]
    try:
        yield
    finally:
        codes = {child.module: child.stop() for child in reversed(children)}
        assert set(codes.values()) == {0}, "\n".join(child.output() for child in children)


async def connector_status(bus: Bus, connector_id: int, wanted: ConnectorStatus) -> None:
    async def reached() -> bool:
        state = await bus.get(contract.CONNECTOR, connector_id=connector_id)
        return state is not None and state.status is wanted
    await async_wait_until(reached, timeout_s=15, what=f"connector {connector_id} {wanted}")


async def session_started(bus: Bus) -> SessionStarted:
    async def found() -> SessionStarted | None:
        _, deliveries = await bus.tail(contract.SESSIONS, "0", block_ms=100)
        return next((d.message for d in deliveries if isinstance(d.message, SessionStarted)), None)
    return await async_wait_until(found, timeout_s=15, what="SessionStarted")


async def test_smartw_shows_the_reservation_and_its_session_names_it(
        bus: Bus, smartw: None, csms: Ocpp16Authorize) -> None:
    """OCTT TC_046_2_CS in the real process: Reserved, a stranger refused, the owner's session
    carries the reservationId and the connector is no longer held once it ends."""
    await bus.set(contract.RESERVATIONS, Reservations(holds=(hold(41, 1),)))
    await connector_status(bus, 1, ConnectorStatus.RESERVED)

    refused = await bus.request(contract.START, remote(1, STRANGER))
    assert (refused.accepted, refused.reason) == (False, RESERVED)
    await bus.request(contract.SIM, SimAction(action="plug", connector_id=1))
    await connector_status(bus, 1, ConnectorStatus.PREPARING)

    async def metered():
        return await bus.get(contract.METER, meter="connector1")
    await async_wait_until(metered, what="meter of connector 1")
    started = await bus.request(contract.START, remote(1, OWNER))
    assert started.accepted, started

    event = await session_started(bus)
    assert (event.connector_id, event.id_tag, event.reservation_id) == (1, OWNER, 41)
    await connector_status(bus, 1, ConnectorStatus.CHARGING)
    await bus.request(contract.SIM, SimAction(action="unplug", connector_id=1))
    await connector_status(bus, 1, ConnectorStatus.AVAILABLE)  # the used reservation holds nothing
