"""Reset and UnlockConnector from the CSMS in the running simulated station: a soft reset stops
the session with its reason, chargepoint restarts every service but the simulator, the station
boots again and an Inoperative connector stays Unavailable; an unlock on a fixed cable finishes
the session and answers NotSupported.

Connector 2 (Type 2, AC) charges; connector 1 (CCS) is the one set Inoperative.
"""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call

from tests.e2e.conftest import CHARGE_POINT_ID
from tests.e2e.helpers import sim, status_notification
from tests.support.station import Station, pid_alive
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms, ReceivedCall

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CHARGING = 2
INOPERATIVE = 1


async def charging(csms: Csms, station: Station, tag: str) -> ReceivedCall:
    """An EV on connector 2 started remotely; returns its StartTransaction once it charges."""
    starts = len(csms.calls("StartTransaction"))
    await sim(station, "plug", str(CHARGING), "--soc", "40")
    await status_notification(csms, CHARGING, "Preparing")
    assert await csms.remote_start(CHARGE_POINT_ID, tag, connector_id=CHARGING) == "Accepted"
    start = await csms.wait_for_call("StartTransaction", count=starts + 1, timeout_s=20)
    await status_notification(csms, CHARGING, "Charging")
    return start


async def restarted(csms: Csms, station: Station, before: dict[str, int | None], boots: int) -> None:
    """The station booted again at the CSMS and every service but the simulator has a new process."""
    await csms.wait_for_call("BootNotification", count=boots + 1, timeout_s=60)
    services = [name for name in station.services]
    now = await asyncio.to_thread(station.wait_running, services)
    assert now["sim"] == before["sim"], "the simulator plays the hardware: it keeps running"
    for name in services:
        if name != "sim":
            assert now[name] != before[name] and not pid_alive(before[name]), name  # type: ignore[arg-type]


def statuses_after(csms: Csms, boot: ReceivedCall, connector_id: int) -> list[str]:
    return [c.payload["status"] for c in csms.calls("StatusNotification")
            if c.at > boot.at and c.payload["connectorId"] == connector_id]


async def test_soft_reset_stops_the_session_restarts_the_services_and_keeps_unavailable(
        csms: Csms, station: Station) -> None:
    """TC_016 (soft reset with a transaction) and, for the Inoperative connector, TC_013/TC_034's
    rule that Unavailable survives a reset."""
    await status_notification(csms, INOPERATIVE, "Available")  # smartw serves its commands
    result = await csms.send(CHARGE_POINT_ID, call.ChangeAvailability(connector_id=INOPERATIVE,
                                                                      type="Inoperative"))
    assert result.status == "Accepted"
    await status_notification(csms, INOPERATIVE, "Unavailable")
    start = await charging(csms, station, "RESET-SOFT")
    before, boots = station.pids(), len(csms.calls("BootNotification"))

    assert (await csms.send(CHARGE_POINT_ID, call.Reset(type="Soft"))).status == "Accepted"

    stop = await csms.wait_for_call("StopTransaction", timeout_s=30)
    assert stop.payload["reason"] == "SoftReset"
    assert stop.payload["transactionId"] == start.response["transactionId"]
    assert stop.payload["meterStop"] >= start.payload["meterStart"]
    await restarted(csms, station, before, boots)
    boot = csms.calls("BootNotification")[-1]
    assert stop.at < boot.at, "the StopTransaction was delivered before the services restarted"
    await async_wait_until(lambda: _reported(csms, boot, INOPERATIVE), timeout_s=20,
                           what="connector 1's status after the reboot")
    assert set(statuses_after(csms, boot, INOPERATIVE)) == {"Unavailable"}
    assert len(csms.calls("StopTransaction")) == 1


async def test_unlock_finishes_the_session_on_a_fixed_cable_and_answers_not_supported(
        csms: Csms, station: Station) -> None:
    """TC_018_2 (unlock with a transaction, fixed cable), TC_017_2 (without), TC_031 (unknown
    connector). The hard reset (TC_013, TC_015) is tested in tests/ocpp16/test_core_actions.py
    and chargepoint's hard restart in tests/chargepoint/test_restart.py."""
    start = await charging(csms, station, "UNLOCK-1")

    result = await csms.send(CHARGE_POINT_ID, call.UnlockConnector(connector_id=CHARGING))

    assert result.status == "NotSupported"
    stop = await csms.wait_for_call("StopTransaction", timeout_s=20)
    assert stop.payload["reason"] == "UnlockCommand"
    assert stop.payload["transactionId"] == start.response["transactionId"]
    await status_notification(csms, CHARGING, "Finishing")
    for connector_id in (INOPERATIVE, 0, 9):
        result = await csms.send(CHARGE_POINT_ID, call.UnlockConnector(connector_id=connector_id))
        assert result.status == "NotSupported", connector_id
    await sim(station, "unplug", str(CHARGING))
    await status_notification(csms, CHARGING, "Available")
    assert len(csms.calls("StopTransaction")) == 1


async def _reported(csms: Csms, boot: ReceivedCall, connector_id: int) -> bool:
    return bool(statuses_after(csms, boot, connector_id))
