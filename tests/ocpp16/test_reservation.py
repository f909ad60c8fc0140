"""Reservation profile at the protocol level: ReserveNow / CancelReservation answered by the real
ocpp16 process from smartw's published state, the reservations kept in its table and published
on contract.RESERVATIONS, ended when used, expired, cancelled or faulted, and kept over a
restart. smartw is played by the test: it writes the connector and station keys and the events
smartw would publish. (What smartw does with a reservation: tests/smartw/test_reservations.py;
the whole station: tests/e2e/test_reservation.py.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import ReservationStatus

from bus import Bus, contract
from bus.enums import ConnectorStatus, Standard
from bus.messages import ConnectorState, ReservationHold, SessionStarted, StationState, utcnow
from tests.ocpp16.conftest import CHARGE_POINT_ID, Ocpp16Process
from tests.support.database import query
from tests.support.waiting import async_wait_until
from workers.ocpp16.reservation_rules import StationView, decide
from workers.sim.csms import Csms

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OWNER = "OWNER1"
STANDARDS = {1: Standard.CCS, 2: Standard.TYPE2}


def connector(connector_id: int, status: ConnectorStatus = ConnectorStatus.AVAILABLE, *,
              plugged: bool = False, session: bool = False) -> ConnectorState:
    return ConnectorState(connector_id=connector_id, standard=STANDARDS[connector_id], status=status,
                          plugged=plugged, session_id="s1" if session else None)


def station(status: ConnectorStatus = ConnectorStatus.AVAILABLE) -> StationState:
    return StationState(status=status, estop=False, io_online=True,
                        operative=status is not ConnectorStatus.UNAVAILABLE)


def hold(connector_id: int, reservation_id: int = 1, *, expires_in_s: float = 600.0,
         now: datetime = NOW) -> ReservationHold:
    return ReservationHold(reservation_id=reservation_id, connector_id=connector_id, id_tag=OWNER,
                           expires_at=now + timedelta(seconds=expires_in_s))


BUSY = connector(1, ConnectorStatus.CHARGING, plugged=True, session=True)
FREE_1, FREE_2 = connector(1), connector(2)
FAULTED_1, FAULTED_2 = connector(1, ConnectorStatus.FAULTED), connector(2, ConnectorStatus.FAULTED)


# ---- the rules, one case each (ocpp16.md §2.16) ------------------------------------------------


@pytest.mark.parametrize(("request_", "connectors", "station_state", "others", "expected"), [
    (hold(1), {1: FREE_1, 2: FREE_2}, station(), [], ReservationStatus.accepted),
    (hold(1), {1: FAULTED_1, 2: FREE_2}, station(), [], ReservationStatus.faulted),
    (hold(1), {1: connector(1, ConnectorStatus.PREPARING, plugged=True), 2: FREE_2}, station(), [],
     ReservationStatus.occupied),
    (hold(1), {1: BUSY, 2: FREE_2}, station(), [], ReservationStatus.occupied),
    (hold(1), {1: connector(1, ConnectorStatus.RESERVED), 2: FREE_2}, station(), [hold(1, 2)],
     ReservationStatus.occupied),
    (hold(1), {1: connector(1, ConnectorStatus.UNAVAILABLE), 2: FREE_2}, station(), [],
     ReservationStatus.unavailable),
    (hold(1), {1: None, 2: FREE_2}, station(), [], ReservationStatus.unavailable),
    (hold(3), {1: FREE_1, 2: FREE_2}, station(), [], ReservationStatus.rejected),
    (hold(1, expires_in_s=-1), {1: FREE_1, 2: FREE_2}, station(), [], ReservationStatus.rejected),
    (hold(1), {1: connector(1, ConnectorStatus.RESERVED), 2: BUSY}, station(), [hold(0, 2)],
     ReservationStatus.occupied),
    (hold(1), {1: connector(1, ConnectorStatus.RESERVED), 2: FREE_2}, station(), [hold(0, 2)],
     ReservationStatus.accepted),
    (hold(0), {1: BUSY, 2: FREE_2}, station(), [], ReservationStatus.accepted),
    (hold(0), {1: BUSY, 2: connector(2, ConnectorStatus.RESERVED)}, station(), [hold(0, 2)],
     ReservationStatus.occupied),
    (hold(0), {1: BUSY, 2: connector(2, ConnectorStatus.RESERVED)}, station(), [hold(2, 2)],
     ReservationStatus.occupied),
    (hold(0), {1: FREE_1, 2: FREE_2}, station(ConnectorStatus.FAULTED), [], ReservationStatus.faulted),
    (hold(0), {1: FAULTED_1, 2: FAULTED_2}, station(), [], ReservationStatus.faulted),
    (hold(0), {1: FREE_1, 2: FREE_2}, station(ConnectorStatus.UNAVAILABLE), [],
     ReservationStatus.unavailable),
    (hold(0), {1: FAULTED_1, 2: connector(2, ConnectorStatus.UNAVAILABLE)}, station(), [],
     ReservationStatus.unavailable),
    (hold(0), {1: FREE_1, 2: FREE_2}, None, [], ReservationStatus.unavailable),
], ids=["free", "TC_048_1-faulted", "TC_048_2-plugged", "session", "held-by-another", "TC_048_3-unavailable",
        "not-described-yet", "TC_048_4-unknown-connector", "expiry-in-the-past",
        "last-free-kept-for-connector-0", "a-second-free-one-is-left", "TC_049-connector-0",
        "TC_050_2-none-left", "TC_050_2-others-held", "TC_050_1-station-faulted", "every-connector-faulted",
        "TC_050_3-station-unavailable", "none-usable", "station-not-described-yet"])
def test_reserve_now_is_answered_from_the_published_state(
        request_: ReservationHold, connectors: dict[int, ConnectorState | None],
        station_state: StationState | None, others: list[ReservationHold],
        expected: ReservationStatus) -> None:
    """OCTT TC_048_1..4_CS and TC_050_1..3_CS: the answer for each state of the connector or station."""
    view = StationView(station_state, connectors)
    assert decide(request_, view, others, zero_supported=True, now=NOW) is expected


def test_connector_0_is_rejected_when_reserve_connector_zero_is_not_supported() -> None:
    """OCTT TC_050_4_CS / TC_048_4_CS: Rejected, whatever the station's state."""
    view = StationView(station(), {1: FREE_1, 2: FREE_2})
    assert decide(hold(0), view, [], zero_supported=False, now=NOW) is ReservationStatus.rejected
    assert decide(hold(1), view, [], zero_supported=False, now=NOW) is ReservationStatus.accepted


# ---- the ocpp16 process ---------------------------------------------------------------------------


async def smartw_state(bus: Bus, *states: ConnectorState, station_state: StationState | None = None) -> None:
    """The keys smartw would have written."""
    await bus.set(contract.STATION, station_state or station())
    for state in states:
        await bus.set(contract.CONNECTOR, state, connector_id=state.connector_id)


async def online(bus: Bus, csms: Csms, start_ocpp16) -> Ocpp16Process:
    await smartw_state(bus, FREE_1, FREE_2)
    process = start_ocpp16(csms.url)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)
    return process


async def reserve(csms: Csms, connector_id: int, reservation_id: int, *, id_tag: str = OWNER,
                  expires_in_s: float = 600.0, parent_id_tag: str | None = None) -> str:
    expiry = (utcnow() + timedelta(seconds=expires_in_s)).isoformat()
    result = await csms.send(CHARGE_POINT_ID, call.ReserveNow(
        connector_id=connector_id, expiry_date=expiry, id_tag=id_tag, reservation_id=reservation_id,
        parent_id_tag=parent_id_tag))
    return str(result.status)


async def cancel(csms: Csms, reservation_id: int) -> str:
    result = await csms.send(CHARGE_POINT_ID, call.CancelReservation(reservation_id=reservation_id))
    return str(result.status)


async def published(bus: Bus) -> dict[int, ReservationHold]:
    reservations = await bus.get(contract.RESERVATIONS)
    return {h.reservation_id: h for h in reservations.holds} if reservations else {}


async def published_ids_become(bus: Bus, wanted: set[int], timeout_s: float = 10.0) -> None:
    async def reached() -> bool:
        return set(await published(bus)) == wanted
    await async_wait_until(reached, timeout_s=timeout_s, what=f"reservations {wanted} on the bus")


def rows(service_db: Path) -> dict[int, dict]:
    found = query(service_db, "SELECT * FROM station_reservation")
    return {row["reservation_id"]: dict(row) for row in found}


async def test_a_reservation_is_accepted_published_replaced_and_cancelled(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path, redis_client) -> None:
    """OCTT TC_051_CS (cancel) and TC_052_CS (cancel an unknown one: Rejected); the same
    reservationId replaces the reservation in force."""
    await online(bus, csms, start_ocpp16)

    assert await reserve(csms, 1, 11, parent_id_tag="GROUP1") == "Accepted"
    held = (await published(bus))[11]
    assert (held.connector_id, held.id_tag, held.parent_id_tag) == (1, OWNER, "GROUP1")
    assert 0 < redis_client.pttl(bus.names.key(contract.RESERVATIONS.format())) <= 600_000
    assert rows(service_db)[11]["ended_at"] is None

    await smartw_state(bus, connector(1, ConnectorStatus.RESERVED))
    assert await reserve(csms, 2, 11, id_tag="OWNER2") == "Accepted"
    held = await published(bus)
    assert list(held) == [11] and (held[11].connector_id, held[11].id_tag) == (2, "OWNER2")
    assert len(rows(service_db)) == 1

    assert await cancel(csms, 11) == "Accepted"
    assert await bus.get(contract.RESERVATIONS) is None
    assert rows(service_db)[11]["end_reason"] == "cancelled"
    assert await cancel(csms, 11) == "Rejected"
    assert await cancel(csms, 999) == "Rejected"


async def test_reserve_now_answers_what_the_station_shows(bus: Bus, csms: Csms, start_ocpp16) -> None:
    """OCTT TC_048_1..4_CS and TC_050_x through the process: nothing is kept when not Accepted;
    an expiryDate that is no date is a FormationViolation."""
    await online(bus, csms, start_ocpp16)

    await smartw_state(bus, connector(1, ConnectorStatus.FAULTED))
    assert await reserve(csms, 1, 1) == "Faulted"
    await smartw_state(bus, connector(1, ConnectorStatus.PREPARING, plugged=True))
    assert await reserve(csms, 1, 2) == "Occupied"
    await smartw_state(bus, connector(1, ConnectorStatus.UNAVAILABLE))
    assert await reserve(csms, 1, 3) == "Unavailable"
    assert await reserve(csms, 9, 4) == "Rejected"
    await smartw_state(bus, station_state=station(ConnectorStatus.UNAVAILABLE))
    assert await reserve(csms, 0, 5) == "Unavailable"
    frame = json.dumps([2, "bad-expiry", "ReserveNow", {"connectorId": 2, "expiryDate": "tomorrow",
                                                        "idTag": OWNER, "reservationId": 6}])
    await csms.send_raw(CHARGE_POINT_ID, frame)

    async def answered():
        return next((reply for reply in csms.raw_replies if reply[1] == "bad-expiry"), None)
    reply = await async_wait_until(answered, what="the CALLERROR")
    assert reply[:3] == [4, "bad-expiry", "FormationViolation"]
    assert await bus.get(contract.RESERVATIONS) is None

    await smartw_state(bus, FREE_1, FREE_2)
    assert await reserve(csms, 1, 7) == "Accepted"
    assert await reserve(csms, 1, 8, id_tag="OTHER1") == "Occupied", "one reservation per connector"
    assert await reserve(csms, 0, 9) == "Accepted", "connector 2 is still free"
    assert await reserve(csms, 0, 10) == "Occupied", "no free connector left for a second one"
    assert set(await published(bus)) == {7, 9}


async def test_start_transaction_carries_the_reservation_it_used_and_ends_it(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """OCTT TC_046_1/2_CS and TC_053_CS, ocpp16's part: smartw's session names the reservation."""
    await online(bus, csms, start_ocpp16)
    assert await reserve(csms, 1, 31) == "Accepted"

    await bus.publish(contract.SESSIONS, SessionStarted(session_id="s-31", connector_id=1, id_tag=OWNER,
                                                        meter_start_wh=1_000, reservation_id=31))

    started = await csms.wait_for_call("StartTransaction")
    assert (started.payload["reservationId"], started.payload["idTag"]) == (31, OWNER)
    await published_ids_become(bus, set())
    assert rows(service_db)[31]["end_reason"] == "used"


async def test_a_reservation_ends_at_its_expiry_or_when_its_connector_or_the_station_fails(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """OCTT TC_047_CS, ocpp16's part (smartw turns the connector Available at the expiry by
    itself); a connector (connector 0: the station) that becomes Faulted or Unavailable ends
    its reservations. An event from before a reservation was made never ends it."""
    await online(bus, csms, start_ocpp16)
    before = utcnow()
    assert await reserve(csms, 1, 41, expires_in_s=1.0) == "Accepted"
    assert await reserve(csms, 2, 42) == "Accepted"
    await published_ids_become(bus, {42}, timeout_s=5)
    assert await reserve(csms, 0, 43) == "Accepted"

    await bus.publish(contract.CONNECTOR_CHANGES,
                      connector(2, ConnectorStatus.FAULTED).model_copy(update={"at": before}))  # ignored
    await bus.publish(contract.STATION_CHANGES,
                      station(ConnectorStatus.UNAVAILABLE).model_copy(update={"at": before}))  # ignored
    await bus.publish(contract.CONNECTOR_CHANGES, connector(2, ConnectorStatus.UNAVAILABLE))
    await bus.publish(contract.STATION_CHANGES, station(ConnectorStatus.FAULTED))

    await published_ids_become(bus, set())
    ended = rows(service_db)
    assert [ended[n]["end_reason"] for n in (41, 42, 43)] == ["expired", "unavailable", "faulted"]


async def test_reservations_survive_a_restart_of_ocpp16_and_a_lost_bus(
        bus: Bus, csms: Csms, start_ocpp16, redis_client) -> None:
    first = await online(bus, csms, start_ocpp16)
    assert await reserve(csms, 1, 51) == "Accepted"
    assert await reserve(csms, 0, 52) == "Accepted"

    assert await first.stopped() == 0
    redis_client.delete(bus.names.key(contract.RESERVATIONS.format()))  # a power cut empties Redis
    start_ocpp16(csms.url)

    await published_ids_become(bus, {51, 52}, timeout_s=20)
    await csms.wait_for_call("BootNotification", count=2, timeout_s=20)
    assert await reserve(csms, 1, 53) == "Occupied", "51 still holds connector 1"
    assert await cancel(csms, 52) == "Accepted"
