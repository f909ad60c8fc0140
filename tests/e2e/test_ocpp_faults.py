"""Fault behaviour as OCTT module 17 checks it (TC_041_CS), in the whole simulated station against
the CSMS: a connector's own fault while it charges, then a station-wide one.

A charge controller's over-temperature makes its connector Faulted (HighTemperature, with the
controller's own code as vendorErrorCode) and ends the transaction (reason Other); once the fault
clears the connector leaves Faulted, and unplugging makes it Available. An open cabinet door
faults the whole station: connector 0 and every connector are Faulted (OtherError, "door_open"),
and all are Available again once it closes. The mapping of every device condition is
workers/smartw/faults.py's (README "Faults").
"""

from __future__ import annotations

import pytest

from tests.e2e.helpers import sim, status_notification
from tests.e2e.ocpp_steps import call_after, calls_after, mark, plug_and_swipe
from tests.support.station import Station
from workers.sim.csms import Csms

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CARD = "0A00000031"
CONNECTORS = (0, 1, 2, 3, 4)  # 0: the station (ops/station.sim.toml has four connectors)


async def test_a_connector_fault_and_a_station_fault_reach_the_csms_and_clear(
        csms: Csms, station: Station) -> None:
    await status_notification(csms, 4, "Available", timeout_s=30)
    start = await plug_and_swipe(csms, station, 2, CARD)

    since = mark(csms)
    await sim(station, "fault", "controller2", "overtemp")
    faulted = await call_after(csms, since, "StatusNotification", connectorId=2, status="Faulted")
    assert faulted.payload["errorCode"] == "HighTemperature"
    assert faulted.payload["info"] == "overtemperature" and faulted.payload.get("vendorErrorCode")
    stop = await call_after(csms, since, "StopTransaction", transactionId=start.response["transactionId"])
    assert stop.payload["reason"] == "Other"
    assert calls_after(csms, since, "StatusNotification", connectorId=1) == []  # only its own connector

    since = mark(csms)
    await sim(station, "clear", "controller2")
    cleared = await call_after(csms, since, "StatusNotification", connectorId=2)
    assert (cleared.payload["status"], cleared.payload["errorCode"]) != ("Faulted", "HighTemperature")
    assert cleared.payload["status"] in ("Preparing", "Finishing")  # the EV is still plugged in
    await sim(station, "unplug", "2")
    await call_after(csms, since, "StatusNotification", connectorId=2, status="Available")

    since = mark(csms)
    await sim(station, "door", "open")
    for connector_id in CONNECTORS:
        door = await call_after(csms, since, "StatusNotification", connectorId=connector_id, status="Faulted")
        assert door.payload["errorCode"] == "OtherError", door.payload
    await sim(station, "door", "close")
    for connector_id in CONNECTORS:
        await call_after(csms, since, "StatusNotification", connectorId=connector_id, status="Available")
    assert calls_after(csms, since, "StartTransaction") == []
