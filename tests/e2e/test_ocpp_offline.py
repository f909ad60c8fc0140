"""Offline behaviour as OCTT module 15 checks it (TC_036..TC_039), in the whole simulated station
(ops/station.sim.toml: 1 CCS, 2 Type 2, 3 CHAdeMO, 4 GB/T) against the CSMS.

One outage serves every case: a session charging when the CSMS goes away keeps sampling and is
stopped by its card while offline (TC_036, TC_038); a session starts and stops while offline with
an unknown idTag (AllowOfflineTxForUnknownId, TC_039); one starts offline with an idTag of the
local list (TC_037_1); one starts offline with an idTag the CSMS refuses once it is back, with
StopTransactionOnInvalidId false: it goes on without power, SuspendedEVSE (TC_037_2). The
refusal with StopTransactionOnInvalidId true (TC_037_3) is tests/ocpp16/test_authorization.py's.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime

import pytest
from ocpp.v16 import call

from bus import contract
from bus.enums import ConnectorStatus
from tests.e2e.conftest import CHARGE_POINT_ID
from tests.e2e.helpers import sim, status_notification
from tests.e2e.ocpp_steps import call_after, calls_after, configure, mark, plug_and_swipe
from tests.support.station import Station
from tests.support.waiting import async_wait_until
from workers.rfid.service import REPEAT_WINDOW_S
from workers.sim.csms import Csms, ReceivedCall
from workers.sim.rfid_port import SWIPE_HOLD_S

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ONLINE, UNKNOWN, LISTED, REFUSED = "0A00000021", "0A00000022", "0A00000023", "0A00000024"
TRANSACTION_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")
OFFLINE_SAMPLES = 3  # MeterValues the first session queues while offline, at 1 s each
ZERO_POWER_W = 50.0  # metering noise
# The same card is a new presentation only once it has left the reader: the simulated swipe
# holds it there, then the reader must hear nothing for its repeat window.
CARD_GONE_S = SWIPE_HOLD_S + REPEAT_WINDOW_S + 0.2


@pytest.fixture(autouse=True)
def reconnect_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the station starts: its reconnect back-off tops out at 1 s, not 60 s."""
    monkeypatch.setenv("OCPP_RECONNECT_MAX", "1")


async def connector_state(station: Station, connector_id: int, *,
                          status: ConnectorStatus | None = None, session: bool | None = None) -> None:
    """Wait until smartw's state of the connector matches (read from the bus: the CSMS is away)."""
    async def matches() -> bool:
        state = station.bus.get(contract.CONNECTOR, connector_id=connector_id)
        return state is not None and (status is None or state.status is status) and (
            session is None or (state.session_id is not None) == session)
    await async_wait_until(matches, timeout_s=30, what=f"connector {connector_id}: {status}/{session}")


async def offline_start(station: Station, connector_id: int, card: str) -> None:
    await sim(station, "plug", str(connector_id))
    await connector_state(station, connector_id, status=ConnectorStatus.PREPARING)
    await sim(station, "swipe", card)
    await connector_state(station, connector_id, session=True)


def transaction_of(csms: Csms, start: ReceivedCall) -> list[ReceivedCall]:
    """Every transaction message of the transaction `start` began, in arrival order."""
    tx_id = start.response["transactionId"]
    later = csms.received[csms.received.index(start) + 1:]
    return [start] + [c for c in later if c.action in TRANSACTION_ACTIONS[1:]
                      and c.payload.get("transactionId") == tx_id]


def stamps(meter_values: list[ReceivedCall]) -> list[datetime]:
    return [datetime.fromisoformat(v["timestamp"]) for c in meter_values for v in c.payload["meterValue"]]


async def test_offline_sessions_start_stop_and_queue_as_octt_module_15_expects(
        csms: Csms, station: Station) -> None:
    await status_notification(csms, 4, "Available", timeout_s=30)
    online = await plug_and_swipe(csms, station, 2, ONLINE)
    listed = call.SendLocalList(list_version=1, update_type="Full", local_authorization_list=[
        {"id_tag": LISTED, "id_tag_info": {"status": "Accepted"}}])
    assert str((await csms.send(CHARGE_POINT_ID, listed)).status) == "Accepted"
    await configure(csms, "AllowOfflineTxForUnknownId", "true")
    await configure(csms, "StopTransactionOnInvalidId", "false")
    csms.behaviour.rejected_id_tags = {REFUSED}
    await csms.wait_for_call("MeterValues", timeout_s=20)

    await csms.stop()
    async def offline() -> bool:
        return not station.bus.get(contract.OCPP_LINK).connected
    await async_wait_until(offline, what="the CSMS connection lost")
    await offline_start(station, 1, UNKNOWN)  # TC_039: started and stopped offline
    await asyncio.sleep(CARD_GONE_S)  # a physical gap, not a wait for a condition
    await sim(station, "swipe", UNKNOWN)
    await connector_state(station, 1, session=False)
    await sim(station, "unplug", "1")
    await offline_start(station, 3, LISTED)  # TC_037_1
    await offline_start(station, 4, REFUSED)  # TC_037_2
    await sim(station, "swipe", ONLINE)  # TC_038
    await connector_state(station, 2, status=ConnectorStatus.FINISHING)
    since = mark(csms)
    await csms.start()

    online_stop = await call_after(csms, since, "StopTransaction",
                                   transactionId=online.response["transactionId"])
    assert (online_stop.payload["reason"], online_stop.payload["idTag"]) == ("Local", ONLINE)
    await call_after(csms, since, "StatusNotification", connectorId=2, status="Finishing")
    sampled = [c for c in transaction_of(csms, online) if c.action == "MeterValues"]
    offline_samples = [c for c in sampled if csms.received.index(c) >= since]
    assert len(offline_samples) >= OFFLINE_SAMPLES  # TC_036: queued while offline, sent after
    times = stamps(sampled)
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    assert all(gap == 1.0 for gap in gaps), gaps
    assert times[-1] <= datetime.fromisoformat(online_stop.payload["timestamp"])

    unknown = await call_after(csms, since, "StartTransaction", connectorId=1, idTag=UNKNOWN)
    assert unknown.response["idTagInfo"]["status"] == "Accepted"
    unknown_stop = transaction_of(csms, unknown)[-1]
    assert unknown_stop.action == "StopTransaction" and unknown_stop.payload.get("reason", "Local") == "Local"

    start_listed = await call_after(csms, since, "StartTransaction", connectorId=3, idTag=LISTED)
    assert start_listed.response["idTagInfo"]["status"] == "Accepted"
    await call_after(csms, since, "StatusNotification", connectorId=3, status="Charging")

    refused = await call_after(csms, since, "StartTransaction", connectorId=4, idTag=REFUSED)
    assert refused.response["idTagInfo"]["status"] == "Invalid"
    suspended = await call_after(csms, since, "StatusNotification", connectorId=4, status="SuspendedEVSE")
    assert suspended.payload["info"] == "deauthorized"
    async def no_power() -> bool:
        return station.bus.get(contract.CONNECTOR, connector_id=4).power_w < ZERO_POWER_W
    await async_wait_until(no_power, what="connector 4 without power")
    assert calls_after(csms, since, "StopTransaction", transactionId=refused.response["transactionId"]) == []

    starts = [c for c in csms.received if c.action == "StartTransaction"]
    assert [c.payload["idTag"] for c in starts] == [ONLINE, UNKNOWN, LISTED, REFUSED]  # in order, once each
    stops = [c for c in csms.received if c.action == "StopTransaction"]
    assert len({c.payload["transactionId"] for c in stops}) == len(stops) == 2
