"""The station under stress: the CSMS goes away mid-session; the e-stop is pressed."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest

from bus import contract
from tests.e2e.conftest import CHARGE_POINT_ID
from tests.e2e.helpers import sim, status_notification
from tests.support.hardware import read_connector_hardware
from tests.support.station import BusReader, Station
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms, ReceivedCall

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

TRANSACTION_ACTIONS = {"StartTransaction", "MeterValues", "StopTransaction"}
OUTAGE_SAMPLES = 4  # MeterValues taken while the CSMS is away, at 1 s each


async def start_remotely(csms: Csms, station: Station, connector_id: int) -> ReceivedCall:
    await sim(station, "plug", str(connector_id), "--soc", "30")
    await status_notification(csms, connector_id, "Preparing")
    assert await csms.remote_start(CHARGE_POINT_ID, "TAG-E2E", connector_id=connector_id) == "Accepted"
    start = await csms.wait_for_call("StartTransaction", timeout_s=20)
    await status_notification(csms, connector_id, "Charging")
    return start


def sampled_at(received: ReceivedCall) -> list[datetime]:
    return [datetime.fromisoformat(v["timestamp"]) for v in received.payload["meterValue"]]


async def test_csms_outage_during_a_session_loses_nothing_and_keeps_the_order(
        csms: Csms, station: Station) -> None:
    await start_remotely(csms, station, 1)
    await csms.wait_for_call("MeterValues", timeout_s=20)
    await csms.stop()
    bus = BusReader()
    try:
        async def queued_while_offline() -> int:
            link = bus.get(contract.OCPP_LINK)
            return link.queued_messages if link and not link.connected \
                and link.queued_messages >= OUTAGE_SAMPLES else 0
        await async_wait_until(queued_while_offline, timeout_s=30, what="MeterValues queued offline")
        await sim(station, "unplug", "1")

        async def stop_queued() -> int:
            link = bus.get(contract.OCPP_LINK)
            state = bus.get(contract.CONNECTOR, connector_id=1)
            return link.queued_messages if state.status.value == "Available" else 0
        queued = await async_wait_until(stop_queued, timeout_s=20, what="the session to end offline")
    finally:
        bus.close()
    delivered_before = len(csms.received)
    await csms.start()

    stop = await csms.wait_for_call("StopTransaction", timeout_s=60)
    assert stop.payload["reason"] == "EVDisconnected"
    after = [c for c in csms.received[delivered_before:] if c.action in TRANSACTION_ACTIONS]
    assert after[-1] is stop
    assert len(after) >= queued, [c.action for c in after]
    transaction = [c for c in csms.received if c.action in TRANSACTION_ACTIONS]
    assert [c.action for c in transaction].count("StartTransaction") == 1
    assert [c.action for c in transaction].count("StopTransaction") == 1
    stamps = [stamp for c in transaction if c.action == "MeterValues" for stamp in sampled_at(c)]
    assert stamps == sorted(stamps) and len(stamps) == len(set(stamps)), stamps
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(stamps)]
    assert max(gaps) < 2.5, f"a sample is missing: gaps {gaps}"
    assert all(gap == round(gap) for gap in gaps), f"samples off the interval boundaries: {gaps}"
    assert stamps[-1] <= datetime.fromisoformat(stop.payload["timestamp"])


async def test_estop_while_charging_opens_the_contactor_and_stops_the_transaction(
        csms: Csms, station: Station) -> None:
    start = await start_remotely(csms, station, 1)
    assert (await read_connector_hardware(station.config_path, 1)).contactor_closed

    await sim(station, "estop", "on")
    stop = await csms.wait_for_call("StopTransaction", timeout_s=20)
    assert stop.payload["reason"] == "EmergencyStop"
    assert stop.payload["transactionId"] == start.response["transactionId"]
    hardware = await read_connector_hardware(station.config_path, 1)
    assert not hardware.contactor_closed
    assert stop.payload["meterStop"] == round(hardware.meter_energy_wh)
    faulted = await status_notification(csms, 1, "Faulted")
    assert faulted.payload["errorCode"] != "NoError"
    assert station.status()["connectors"][0]["status"] == "Faulted"

    await sim(station, "estop", "off")
    await status_notification(csms, 1, "Finishing")
