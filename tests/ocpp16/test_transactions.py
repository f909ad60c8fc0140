"""Session events from the bus become StartTransaction, MeterValues and StopTransaction."""

from __future__ import annotations

import pytest

from bus import Bus, contract
from bus.enums import ConnectorStatus, Standard, StopReason
from bus.messages import ConnectorState, MeterReading, SessionStarted, SessionStopped
from tests.support.waiting import async_wait_until
from workers.ocpp16 import payloads
from workers.ocpp16.txqueue import TransactionQueue, db
from workers.sim.csms import Csms

TRANSACTION_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")


def transaction_calls(csms: Csms):
    return [c for c in csms.received if c.action in TRANSACTION_ACTIONS]


def sampled(call, measurand: str) -> dict:
    values = call.payload["meterValue"][0]["sampledValue"]
    return next(v for v in values if v["measurand"] == measurand)


async def test_session_becomes_start_meter_values_and_stop(bus: Bus, csms: Csms, start_ocpp16) -> None:
    await bus.set(contract.METER, MeterReading(meter="connector1", energy_wh=12_345.6, power_w=7_400),
                  meter="connector1")
    await bus.set(contract.CONNECTOR, ConnectorState(connector_id=1, standard=Standard.CCS,
                                                     status=ConnectorStatus.CHARGING, soc=42),
                  connector_id=1)
    start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")

    await bus.publish(contract.SESSIONS, SessionStarted(session_id="s-1", connector_id=1, id_tag="04A1B2C3",
                                                        meter_start_wh=12_000.4))
    start = await csms.wait_for_call("StartTransaction")
    assert start.payload["connectorId"] == 1 and start.payload["idTag"] == "04A1B2C3"
    assert start.payload["meterStart"] == 12_000 and start.payload["timestamp"].endswith("Z")
    running = await async_wait_until(
        lambda: _transaction_with_id(bus, 1), what="OCPP_TRANSACTION with the transactionId")
    assert running.session_id == "s-1"

    meter = await csms.wait_for_call("MeterValues", timeout_s=5)
    assert meter.payload["transactionId"] == running.transaction_id
    assert meter.payload["connectorId"] == 1
    assert sampled(meter, "Energy.Active.Import.Register") == {
        "value": "12346", "context": "Sample.Periodic", "format": "Raw",
        "measurand": "Energy.Active.Import.Register", "location": "Outlet", "unit": "Wh"}
    assert sampled(meter, "Power.Active.Import")["value"] == "7400"
    assert sampled(meter, "SoC") == {"value": "42", "context": "Sample.Periodic", "format": "Raw",
                                     "measurand": "SoC", "location": "EV", "unit": "Percent"}

    await bus.publish(contract.SESSIONS, SessionStopped(session_id="s-1", connector_id=1, id_tag="04A1B2C3",
                                                        meter_stop_wh=15_000.7, reason=StopReason.LOCAL))
    stop = await csms.wait_for_call("StopTransaction")
    assert stop.payload["transactionId"] == running.transaction_id
    assert stop.payload["meterStop"] == 15_001 and stop.payload["reason"] == "Local"
    assert stop.payload["idTag"] == "04A1B2C3"
    await async_wait_until(lambda: _gone(bus, 1), what="OCPP_TRANSACTION deleted")

    calls = transaction_calls(csms)
    assert calls[0].action == "StartTransaction" and calls[-1].action == "StopTransaction"
    assert {c.action for c in calls[1:-1]} == {"MeterValues"}
    assert all(c.error_code is None for c in csms.received), "the CSMS refused a message"
    await async_wait_until(lambda: _queue_empty(bus), what="OCPP_LINK.queued_messages == 0")


async def _transaction_with_id(bus: Bus, connector_id: int):
    running = await bus.get(contract.OCPP_TRANSACTION, connector_id=connector_id)
    return running if running is not None and running.transaction_id is not None else None


async def _gone(bus: Bus, connector_id: int) -> bool:
    return await bus.get(contract.OCPP_TRANSACTION, connector_id=connector_id) is None


async def _queue_empty(bus: Bus) -> bool:
    link = await bus.get(contract.OCPP_LINK)
    return link is not None and link.connected and link.queued_messages == 0


def _queue_session(queue: TransactionQueue, session_id: str) -> None:
    started = SessionStarted(session_id=session_id, connector_id=1, id_tag="AA01", meter_start_wh=1_000)
    queue.record_start(started, payloads.start_transaction(started), None)
    stopped = SessionStopped(session_id=session_id, connector_id=1, meter_stop_wh=1_500,
                             reason=StopReason.LOCAL)
    queue.record_stop(stopped, payloads.stop_transaction(stopped, None), None)


@pytest.mark.django_db(transaction=True)
async def test_a_window_fills_in_the_transaction_id_known_in_the_database_or_settled_in_it() -> None:
    """One query reads the next messages; a Stop gets its transactionId from the Transaction row
    (Start answered before the window was read), from its Start answered within the window, or
    -1 when its Start was given up (errata 3.18)."""
    queue = TransactionQueue(attempts=1, retry_interval_s=0)
    for session_id in ("answered-before", "answered-within", "given-up"):
        await db(_queue_session, queue, session_id)
    first = await db(queue.window)
    start = first.next()
    assert start is not None and start.action == "StartTransaction"
    await db(queue.delivered, start, {"transaction_id": 41})

    window = await db(queue.window)
    assert len(window) == 5
    stop = window.next()
    assert stop is not None and stop.payload["transactionId"] == 41
    window.delivered(stop, await db(queue.delivered, stop, {}))
    start = window.next()
    assert start is not None and start.session_id == "answered-within"
    tx = await db(queue.delivered, start, {"transaction_id": 42})
    window.delivered(start, tx.transaction_id if tx else None)
    stop = window.next()
    assert stop is not None and stop.payload["transactionId"] == 42
    window.delivered(stop, await db(queue.delivered, stop, {}))
    start = window.next()
    assert start is not None and await db(queue.failed_attempt, start.row_id, "refused")  # given up
    window.given_up(start)
    stop = window.next()
    assert stop is not None and stop.payload["transactionId"] == -1
    assert (await db(queue.window)).next() == stop  # read again: the same, from the database
