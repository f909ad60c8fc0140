"""Starting and stopping sessions as OCTT modules 02 and 03 check them, in the whole simulated
station (ops/station.sim.toml: 1 CCS, 2 Type 2, 3 CHAdeMO, 4 GB/T) against the CSMS.

One station runs every case, each on its own connector and cards, so a start (the costly part)
is never waited for twice: plug-in first and a stop with the same card; identification first
(the HMI's Start picks the connector) with a plug in time and with ConnectionTimeOut running
out; a card of the session's group (parentIdTag) stopping it while cards of no group or another
group stop nothing; a RemoteStart without connectorId going to the connector reserved for its
idTag; and the EV leaving with StopTransactionOnEVSideDisconnect true, false on a Type 2
connector (the session waits for the EV) and false on a DC one (a DC session always ends).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from ocpp.v16 import call

from bus import Bus, contract
from bus.enums import StartSource
from bus.messages import StartRequest, utcnow
from tests.e2e.conftest import CHARGE_POINT_ID
from tests.e2e.helpers import sim, status_notification
from tests.e2e.ocpp_steps import call_after, calls_after, configure, mark, plug_and_swipe
from tests.support.database import query
from tests.support.station import Station
from workers.sim.csms import Csms

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PLUG_FIRST, ID_FIRST, TIMED_OUT = "0A00000001", "0A00000002", "0A00000003"
GROUP_STARTER, GROUP_MEMBER, NO_GROUP, OTHER_GROUP = "0A00000011", "0A00000012", "0A00000013", "0A00000014"
GROUP = "FLEET-7"
REMOTE_TAG = "REMOTE-RESERVED"
CONNECTION_TIMEOUT_S = 3


def session_rows(station: Station, id_tag: str) -> list[tuple[str]]:
    """The parent_id_tag of each ChargingSession row smartw wrote for `id_tag`."""
    path = Path(station.database_url.removeprefix("sqlite:///"))
    return [tuple(row) for row in query(path, "SELECT parent_id_tag FROM station_chargingsession "
                                              "WHERE id_tag = ?", id_tag)]


async def test_sessions_start_and_stop_as_octt_modules_02_and_03_expect(
        csms: Csms, station: Station, bus: Bus) -> None:
    csms.behaviour.parent_id_tags = {GROUP_STARTER: GROUP, GROUP_MEMBER: GROUP, OTHER_GROUP: "ELSEWHERE"}
    await status_notification(csms, 4, "Available", timeout_s=30)

    # TC_003_CS and TC_068_CS on the Type 2 connector; the GB/T one starts for the group meanwhile.
    plug_first = await plug_and_swipe(csms, station, 2, PLUG_FIRST)
    grouped = await plug_and_swipe(csms, station, 4, GROUP_STARTER)
    since = mark(csms)
    await sim(station, "swipe", PLUG_FIRST)
    stop = await call_after(csms, since, "StopTransaction",
                            transactionId=plug_first.response["transactionId"])
    assert (stop.payload["reason"], stop.payload["idTag"]) == ("Local", PLUG_FIRST)
    assert calls_after(csms, since, "Authorize") == []  # the same idTag stops without asking
    await call_after(csms, since, "StatusNotification", connectorId=2, status="Finishing")

    # TC_069_CS: no group and another group stop nothing (nor start anything); the group's card stops.
    since = mark(csms)
    for card in (NO_GROUP, OTHER_GROUP, GROUP_MEMBER):
        await sim(station, "swipe", card)
    stop = await call_after(csms, since, "StopTransaction", transactionId=grouped.response["transactionId"])
    assert (stop.payload["reason"], stop.payload["idTag"]) == ("Local", GROUP_MEMBER)
    assert [c.payload["idTag"] for c in calls_after(csms, since, "Authorize")] == [NO_GROUP, OTHER_GROUP,
                                                                                  GROUP_MEMBER]
    assert calls_after(csms, since, "StopTransaction") == [stop]
    assert calls_after(csms, since, "StartTransaction") == []
    assert session_rows(station, GROUP_STARTER) == [(GROUP,)]
    await sim(station, "unplug", "4")

    # TC_004_1_CS: identification first: the HMI's Start on the CHAdeMO connector, the card, then the EV.
    since = mark(csms)
    answer = await bus.request(contract.START, StartRequest(connector_id=3, source=StartSource.HMI))
    assert answer.accepted, answer
    await call_after(csms, since, "StatusNotification", connectorId=3, status="Preparing")
    await sim(station, "swipe", ID_FIRST)
    await call_after(csms, since, "Authorize", idTag=ID_FIRST)
    await sim(station, "plug", "3")
    id_first = await call_after(csms, since, "StartTransaction", connectorId=3, idTag=ID_FIRST)
    await call_after(csms, since, "StatusNotification", connectorId=3, status="Charging")

    # TC_005_1_CS / TC_005_2_CS: StopTransactionOnEVSideDisconnect=true ends the session on unplug.
    since = mark(csms)
    await sim(station, "unplug", "3")
    stop = await call_after(csms, since, "StopTransaction", transactionId=id_first.response["transactionId"])
    assert stop.payload["reason"] == "EVDisconnected" and "idTag" not in stop.payload
    await call_after(csms, since, "StatusNotification", connectorId=3, status="Available")  # fixed cable

    # TC_004_2_CS: ConnectionTimeOut runs out: Preparing, then Available (B1) after the timeout.
    await configure(csms, "ConnectionTimeOut", str(CONNECTION_TIMEOUT_S))
    since = mark(csms)
    assert (await bus.request(contract.START, StartRequest(connector_id=1, source=StartSource.HMI))).accepted
    await sim(station, "swipe", TIMED_OUT)
    await call_after(csms, since, "Authorize", idTag=TIMED_OUT)
    preparing = time.monotonic()
    await call_after(csms, since, "StatusNotification", connectorId=1, status="Available",
                     timeout_s=CONNECTION_TIMEOUT_S + 10)
    assert time.monotonic() - preparing >= CONNECTION_TIMEOUT_S - 1
    assert calls_after(csms, since, "StartTransaction") == []
    await configure(csms, "ConnectionTimeOut", "60")

    # TC_011_1_CS (remote start first, then the plug) with RemoteStart without connectorId: the
    # connector reserved for its idTag, not the first free one.
    expiry = (utcnow() + timedelta(minutes=10)).isoformat()
    reserve = call.ReserveNow(connector_id=3, expiry_date=expiry, id_tag=REMOTE_TAG, reservation_id=31)
    assert str((await csms.send(CHARGE_POINT_ID, reserve)).status) == "Accepted"
    await status_notification(csms, 3, "Reserved")
    since = mark(csms)
    assert await csms.remote_start(CHARGE_POINT_ID, REMOTE_TAG) == "Accepted"
    await sim(station, "plug", "3")
    remote = await call_after(csms, since, "StartTransaction", idTag=REMOTE_TAG)
    assert (remote.payload["connectorId"], remote.payload["reservationId"]) == (3, 31)

    # TC_005_3_CS: with false, the Type 2 session waits for its EV (SuspendedEV) and goes on when it
    # is back; a DC session ends all the same.
    await configure(csms, "StopTransactionOnEVSideDisconnect", "false")
    await sim(station, "unplug", "2")
    ac = await plug_and_swipe(csms, station, 2, PLUG_FIRST)
    since = mark(csms)
    await sim(station, "unplug", "2")
    away = await call_after(csms, since, "StatusNotification", connectorId=2, status="SuspendedEV")
    assert away.payload["errorCode"] == "NoError" and away.payload["info"] == "ev_disconnected"
    await sim(station, "unplug", "3")
    dc_stop = await call_after(csms, since, "StopTransaction", transactionId=remote.response["transactionId"])
    assert dc_stop.payload["reason"] == "EVDisconnected"
    back = mark(csms)
    await sim(station, "plug", "2")
    await call_after(csms, back, "StatusNotification", connectorId=2, status="Charging")
    assert calls_after(csms, since, "StopTransaction", transactionId=ac.response["transactionId"]) == []
    since = mark(csms)
    await sim(station, "unplug", "2")
    await call_after(csms, since, "StatusNotification", connectorId=2, status="SuspendedEV")
    assert await csms.remote_stop(CHARGE_POINT_ID, ac.response["transactionId"]) == "Accepted"
    stop = await call_after(csms, since, "StopTransaction", transactionId=ac.response["transactionId"])
    assert stop.payload["reason"] == "Remote"
    await call_after(csms, since, "StatusNotification", connectorId=2, status="Available")
