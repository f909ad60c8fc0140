"""Safety reactions through the whole station: an open door stops charging, a welded contactor
locks the station until it opens again, and a controller's own code reaches the CSMS as
vendorErrorCode."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import CHARGE_POINT_ID
from tests.e2e.helpers import sim, status_notification
from tests.e2e.test_faults import start_remotely
from tests.support.hardware import read_connector_hardware
from tests.support.station import Station
from tests.support.waiting import async_wait_until
from workers.drivers.controllers.interface import ControllerError
from workers.sim.csms import Csms, ReceivedCall

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def calls_since(csms: Csms, action: str, count_before: int) -> list[ReceivedCall]:
    return csms.calls(action)[count_before:]


async def status_after(csms: Csms, count_before: int, connector_id: int, status: str) -> ReceivedCall:
    """A StatusNotification sent after the first `count_before` ones."""
    async def sent() -> ReceivedCall | None:
        return next((c for c in calls_since(csms, "StatusNotification", count_before)
                     if c.payload["connectorId"] == connector_id and c.payload["status"] == status), None)
    return await async_wait_until(sent, timeout_s=20, what=f"{status} for connector {connector_id}")


async def test_an_open_door_stops_the_session_and_closing_it_brings_the_connector_back(
        csms: Csms, station: Station) -> None:
    start = await start_remotely(csms, station, 1)
    notifications_before = len(csms.calls("StatusNotification"))

    await sim(station, "door", "open")
    stop = await csms.wait_for_call("StopTransaction", timeout_s=20)
    assert stop.payload["transactionId"] == start.response["transactionId"]
    assert stop.payload["reason"] == "Other"
    assert not (await read_connector_hardware(station.config_path, 1)).contactor_closed
    faulted = await status_after(csms, notifications_before, 1, "Faulted")
    assert (faulted.payload["errorCode"], faulted.payload["info"]) == ("OtherError", "door_open")

    notifications_before = len(csms.calls("StatusNotification"))
    await sim(station, "door", "close")
    await status_after(csms, notifications_before, 1, "Finishing")  # the EV is still plugged
    assert station.status()["connectors"][0]["status"] == "Finishing"


async def test_a_welded_contactor_faults_its_connector_and_refuses_starts_until_it_opens(
        csms: Csms, station: Station) -> None:
    await sim(station, "fault", "io", "weld1")  # the contacts will stay closed once they close
    start = await start_remotely(csms, station, 1)
    # Only what follows the stop: connector 2 may have been Unavailable at boot, before smartw
    # published its state (no info then).
    notifications_before = len(csms.calls("StatusNotification"))
    assert await csms.remote_stop(CHARGE_POINT_ID, start.response["transactionId"]) == "Accepted"
    await csms.wait_for_call("StopTransaction", timeout_s=20)

    welded = await status_after(csms, notifications_before, 1, "Faulted")
    assert (welded.payload["errorCode"], welded.payload["info"]) == ("PowerSwitchFailure", "contactor_welded")
    locked = await status_after(csms, notifications_before, 2, "Unavailable")
    assert locked.payload["info"] == "contactor_welded"
    assert await csms.remote_start(CHARGE_POINT_ID, "TAG-E2E", connector_id=2) == "Rejected"
    assert await csms.remote_start(CHARGE_POINT_ID, "TAG-E2E", connector_id=1) == "Rejected"
    assert len(csms.calls("StartTransaction")) == 1

    notifications_before = len(csms.calls("StatusNotification"))
    await sim(station, "clear", "io")  # the contacts open: the feedback follows the coil again
    await status_after(csms, notifications_before, 1, "Finishing")
    await status_after(csms, notifications_before, 2, "Available")
    assert len(csms.calls("StartTransaction")) == 1  # nothing restarted by itself


async def test_a_controller_fault_reaches_the_csms_with_its_ocpp_code_and_vendor_code(
        csms: Csms, station: Station) -> None:
    await sim(station, "plug", "1", "--soc", "30")
    await status_notification(csms, 1, "Preparing")
    await sim(station, "fault", "controller1", "overtemp")
    faulted = await status_notification(csms, 1, "Faulted")
    assert faulted.payload["errorCode"] == "HighTemperature"
    assert faulted.payload["info"] == "overtemperature"
    assert faulted.payload["vendorErrorCode"] == str(int(ControllerError.OVERTEMPERATURE))
    notifications_before = len(csms.calls("StatusNotification"))
    await sim(station, "clear", "controller1")
    back = await status_after(csms, notifications_before, 1, "Preparing")
    assert back.payload["errorCode"] == "NoError" and "vendorErrorCode" not in back.payload
