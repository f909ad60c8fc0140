"""Reservations in the whole simulated station against the CSMS: ReserveNow makes the connector
Reserved at the CSMS, other idTags are refused there (a card is not even authorized), the
reserving card starts it, and StartTransaction names the reservation; a reservation of
connector 0 holds the last free connector; one that is not used turns Available again at its
expiry. As OCTT does, the connectors not in use are set Inoperative first.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from ocpp.v16 import call

from bus import contract
from bus.messages import utcnow
from tests.e2e.conftest import CHARGE_POINT_ID
from tests.e2e.helpers import CARD, sim, status_notification
from tests.support.station import Station
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms, ReceivedCall

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

STRANGER_CARD = "0A00B1C2D4"
OWNER_2 = "OWNER-2"
CONNECTORS = (1, 2, 3, 4)  # ops/station.sim.toml


async def only_in_use(csms: Csms, connector_id: int) -> None:
    """OCTT's SetConnectorUnavailable for every other connector."""
    await status_notification(csms, connector_id, "Available", timeout_s=30)
    for other in CONNECTORS:
        if other != connector_id:
            result = await csms.send(CHARGE_POINT_ID, call.ChangeAvailability(connector_id=other,
                                                                              type="Inoperative"))
            assert str(result.status) == "Accepted"
            await status_notification(csms, other, "Unavailable")


def mark(csms: Csms) -> int:
    return len(csms.calls("StatusNotification"))


async def statuses_follow(csms: Csms, connector_id: int, since: int, *expected: str) -> None:
    """Wait until the connector's StatusNotifications after `since` (a `mark`) hold `expected`
    in that order (others may come between)."""
    async def seen() -> bool:
        statuses = iter(c.payload["status"] for c in csms.calls("StatusNotification")[since:]
                        if c.payload["connectorId"] == connector_id)
        return all(status in statuses for status in expected)
    await async_wait_until(seen, timeout_s=20, what=f"connector {connector_id}: {', '.join(expected)}")


async def reserve(csms: Csms, connector_id: int, reservation_id: int, *, id_tag: str = CARD,
                  expires_in_s: float = 600.0) -> str:
    expiry = (utcnow() + timedelta(seconds=expires_in_s)).isoformat()
    result = await csms.send(CHARGE_POINT_ID, call.ReserveNow(
        connector_id=connector_id, expiry_date=expiry, id_tag=id_tag, reservation_id=reservation_id))
    return str(result.status)


async def operative(csms: Csms, connector_id: int) -> None:
    since = mark(csms)
    result = await csms.send(CHARGE_POINT_ID, call.ChangeAvailability(connector_id=connector_id,
                                                                      type="Operative"))
    assert str(result.status) == "Accepted"
    await statuses_follow(csms, connector_id, since, "Available")


def started(start: ReceivedCall) -> list[object]:
    return [start.payload.get(key) for key in ("connectorId", "idTag", "reservationId")]


async def test_reservations_hold_a_connector_for_their_idtag_until_used_or_expired(
        csms: Csms, station: Station) -> None:
    """One station (a start costs more than the steps), three OCTT cases in turn:
    TC_046_1_CS (and TC_046_2_CS's refusal of another idTag) on connector 2; TC_049_CS: with
    connector 2 charging and 3, 4 Inoperative, a reservation of connector 0 holds connector 1,
    the last free one; TC_047_CS: a reservation of connector 3 that nobody uses expires."""
    await only_in_use(csms, 2)
    assert await reserve(csms, 2, 461) == "Accepted"
    await status_notification(csms, 2, "Reserved")
    assert await csms.remote_start(CHARGE_POINT_ID, "OTHER-TAG", connector_id=2) == "Rejected"
    await sim(station, "swipe", STRANGER_CARD)  # step 5: no Authorize for it
    await sim(station, "swipe", CARD)
    await csms.wait_for_call("Authorize", timeout_s=20)
    await status_notification(csms, 2, "Preparing")
    await sim(station, "plug", "2")
    assert started(await csms.wait_for_call("StartTransaction", timeout_s=30)) == [2, CARD, 461]
    assert [c.payload["idTag"] for c in csms.calls("Authorize")] == [CARD]
    await status_notification(csms, 2, "Charging")
    assert station.bus.get(contract.RESERVATIONS) is None, "the reservation ended when it was used"

    await operative(csms, 1)
    since = mark(csms)
    assert await reserve(csms, 0, 491, id_tag=OWNER_2) == "Accepted"
    await statuses_follow(csms, 1, since, "Reserved")
    assert await csms.remote_start(CHARGE_POINT_ID, "OTHER-TAG", connector_id=1) == "Rejected"
    assert await csms.remote_start(CHARGE_POINT_ID, OWNER_2, connector_id=1) == "Accepted"
    await sim(station, "plug", "1")
    assert started(await csms.wait_for_call("StartTransaction", count=2, timeout_s=30)) == [1, OWNER_2, 491]

    await operative(csms, 3)
    since = mark(csms)
    assert await reserve(csms, 3, 471, expires_in_s=3.0) == "Accepted"
    await statuses_follow(csms, 3, since, "Reserved", "Available")  # Available: the expiry
