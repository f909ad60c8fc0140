"""A CSMS outage, an ocpp16 restart and a kill -9 in the middle of a replay lose no transaction
message and keep their order."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from bus import Bus, contract
from bus.enums import StopReason
from bus.messages import MeterReading, SessionStarted, SessionStopped
from tests.ocpp16.conftest import Ocpp16Process
from tests.ocpp16.test_transactions import TRANSACTION_ACTIONS, transaction_calls
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms


async def _link(bus: Bus):
    return await bus.get(contract.OCPP_LINK)


async def test_outage_and_restart_deliver_every_message_once_in_order(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    for connector_id in (1, 2):
        name = f"connector{connector_id}"
        await bus.set(contract.METER, MeterReading(meter=name, energy_wh=1_000 * connector_id, power_w=3_000),
                      meter=name)
    ocpp16 = start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")
    await bus.publish(contract.SESSIONS, SessionStarted(session_id="s-1", connector_id=1, id_tag="AA01",
                                                        meter_start_wh=1_000))
    await csms.wait_for_call("StartTransaction")

    await csms.stop()  # the CSMS goes away during the session
    await async_wait_until(lambda: _disconnected(bus), what="ocpp16 noticing the outage")
    await bus.publish(contract.SESSIONS, SessionStopped(session_id="s-1", connector_id=1, id_tag="AA01",
                                                        meter_stop_wh=1_500, reason=StopReason.LOCAL))
    await bus.publish(contract.SESSIONS, SessionStarted(session_id="s-2", connector_id=2, id_tag="BB02",
                                                        meter_start_wh=2_000))
    await async_wait_until(lambda: _queued_at_least(bus, 4), what="messages queued while offline")

    assert await ocpp16.stopped() == 0  # ocpp16 restarts while the CSMS is still away
    await bus.publish(contract.SESSIONS, SessionStopped(session_id="s-2", connector_id=2, meter_stop_wh=2_700,
                                                        reason=StopReason.EV_DISCONNECTED))
    start_ocpp16(csms.url)
    await async_wait_until(lambda: _stop_recorded(bus, 2), what="the restarted ocpp16 recording s-2's stop")

    await csms.start()  # same port
    await csms.wait_for_call("StopTransaction", count=2, timeout_s=20)
    await async_wait_until(lambda: _queued_at_least(bus, 0, connected=True, exactly=True),
                           what="an empty queue")

    calls = transaction_calls(csms)
    keys = [(c.action, json.dumps(c.payload, sort_keys=True)) for c in calls]
    assert len(keys) == len(set(keys)), "a message was delivered twice"
    assert all(c.error_code is None for c in calls)
    starts = [c for c in calls if c.action == "StartTransaction"]
    stops = [c for c in calls if c.action == "StopTransaction"]
    assert [s.payload["idTag"] for s in starts] == ["AA01", "BB02"]
    assert [(s.payload["transactionId"], s.payload["meterStop"], s.payload["reason"]) for s in stops] == [
        (1, 1_500, "Local"), (2, 2_700, "EVDisconnected")]
    assert "idTag" not in stops[1].payload  # the station stopped it: no idTag
    order = [(c.action, c.payload.get("transactionId")) for c in calls]
    first_stop = order.index(("StopTransaction", 1))
    first_start, second_start = (i for i, (action, _) in enumerate(order) if action == "StartTransaction")
    assert first_start == 0 and first_stop < second_start
    assert {o for o in order[1:first_stop]} <= {("MeterValues", 1)}
    assert {o for o in order[second_start + 1:-1]} == {("MeterValues", 2)}  # sampled offline, id filled in
    meter_times = [c.payload["meterValue"][0]["timestamp"] for c in calls if c.action == "MeterValues"]
    assert meter_times == sorted(meter_times)
    assert len(csms.calls("BootNotification")) == 2  # once per ocpp16 start, not per reconnect
    assert {c.action for c in calls} == set(TRANSACTION_ACTIONS)


QUEUED_SESSIONS = 40  # StartTransaction + StopTransaction each: 80 messages to replay
KILLED_AFTER_STARTS = 12  # answered StartTransactions before the kill -9


async def test_a_kill_9_during_a_replay_loses_nothing_and_repeats_at_most_the_message_in_flight(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """OCTT TC_039_CS (offline transactions) with a crash on top: 80 messages queued offline,
    ocpp16 killed (SIGKILL) while it replays them. After the restart every message arrives, in
    the queued order, each Stop with the transactionId of its Start; the only one the CSMS may
    see twice is the one whose answer the killed process had not recorded yet (OCPP has no way
    to tell the CSMS it is the same message). The kill comes right after a StartTransaction was
    answered: when it is the one sent again, its second answer's transactionId is the one its
    Stop carries."""
    await csms.stop()
    recording = start_ocpp16(csms.url, OCPP_METER_VALUE_SAMPLE_INTERVAL="0")
    for number in range(QUEUED_SESSIONS):
        session = {"session_id": f"k-{number}", "connector_id": 1, "id_tag": f"TAG{number}"}
        await bus.publish(contract.SESSIONS, SessionStarted(**session, meter_start_wh=1_000 * number))
        await bus.publish(contract.SESSIONS, SessionStopped(**session, meter_stop_wh=1_000 * number + 500,
                                                            reason=StopReason.LOCAL))
    await async_wait_until(lambda: _queued_at_least(bus, 2 * QUEUED_SESSIONS, exactly=True),
                           what="every message queued while offline")
    assert await recording.stopped() == 0

    crashing = Ocpp16Process(recording.env, recording.log_path).start()  # not the fixture's: killed
    try:
        await csms.start()
        await csms.wait_for_call("StartTransaction", count=KILLED_AFTER_STARTS, timeout_s=20)
        crashing.process.kill()  # type: ignore[union-attr]
    finally:
        await asyncio.to_thread(crashing.stop)
    received_before_kill = len(transaction_calls(csms))
    assert received_before_kill < 2 * QUEUED_SESSIONS, "the replay was over before the kill"
    start_ocpp16(csms.url, OCPP_METER_VALUE_SAMPLE_INTERVAL="0")
    await async_wait_until(lambda: _all_delivered(service_db), timeout_s=20, what="every message delivered")

    calls = transaction_calls(csms)
    sent = [(c.action, c.payload["idTag"]) for c in calls]
    queued = [(action, f"TAG{n}") for n in range(QUEUED_SESSIONS)
              for action in ("StartTransaction", "StopTransaction")]
    assert list(dict.fromkeys(sent)) == queued  # none lost, none out of order
    repeated = [i for i in range(1, len(sent)) if sent[i] in sent[:i]]
    assert repeated in ([], [received_before_kill]), (received_before_kill, repeated)
    if repeated:  # the repeat comes right after the kill and is the message sent last before it
        assert sent[received_before_kill] == sent[received_before_kill - 1]
    given = {c.payload["idTag"]: c.response["transactionId"] for c in calls  # the last answer counts
             if c.action == "StartTransaction" and c.answered}
    assert [c.payload["transactionId"] for c in calls if c.action == "StopTransaction"] == [
        given[f"TAG{n}"] for n in range(QUEUED_SESSIONS)]


async def _all_delivered(database: Path) -> bool:
    with sqlite3.connect(database) as db:
        states = db.execute("SELECT state, COUNT(*) FROM station_outboxmessage WHERE lane = 'transaction' "
                            "GROUP BY state").fetchall()
    return states == [("delivered", 2 * QUEUED_SESSIONS)]


async def _disconnected(bus: Bus) -> bool:
    link = await _link(bus)
    return link is not None and not link.connected


async def _queued_at_least(bus: Bus, count: int, *, connected: bool = False, exactly: bool = False) -> bool:
    link = await _link(bus)
    if link is None or link.connected != connected:
        return False
    return link.queued_messages == count if exactly else link.queued_messages >= count


async def _stop_recorded(bus: Bus, connector_id: int) -> bool:
    link = await _link(bus)
    gone = await bus.get(contract.OCPP_TRANSACTION, connector_id=connector_id) is None
    return gone and link is not None and not link.connected
