"""Registration, StatusNotifications and heartbeat against the real CSMS."""

from __future__ import annotations

from datetime import timedelta

from ocpp.v16.enums import RegistrationStatus

from bus import Bus, contract
from bus.enums import ConnectorErrorCode, ConnectorStatus, Standard
from bus.messages import ConnectorState, SessionStarted, StationState
from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms


def connector(connector_id: int, status: ConnectorStatus, **fields) -> ConnectorState:
    return ConnectorState(connector_id=connector_id, standard=Standard.CCS, status=status, **fields)


async def test_boot_is_followed_by_status_of_connector_0_and_every_connector(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    """OCTT TC_001 (cold boot): Accepted, then StatusNotification of connector 0 and of each one."""
    await bus.set(contract.STATION, StationState(status=ConnectorStatus.AVAILABLE, estop=False,
                                                 io_online=True))
    await bus.set(contract.CONNECTOR, connector(1, ConnectorStatus.AVAILABLE), connector_id=1)
    start_ocpp16(csms.url)

    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)
    first = csms.calls()[:4]
    assert [c.action for c in first] == ["BootNotification"] + ["StatusNotification"] * 3
    assert all(c.charge_point_id == CHARGE_POINT_ID and c.error_code is None for c in first)
    reported = [(c.payload["connectorId"], c.payload["status"], c.payload["errorCode"]) for c in first[1:]]
    # connector 2 has no state from smartw yet: Unavailable until it has one
    assert reported == [(0, "Available", "NoError"), (1, "Available", "NoError"),
                        (2, "Unavailable", "NoError")]
    link = await async_wait_until(lambda: bus.get(contract.OCPP_LINK), what="OCPP_LINK")
    assert link.connected and link.registration == "Accepted" and link.queued_messages == 0


async def test_status_notification_only_when_status_or_error_changes(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    start_ocpp16(csms.url)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)

    await bus.publish(contract.CONNECTOR_CHANGES, connector(1, ConnectorStatus.PREPARING, plugged=True))
    await bus.publish(contract.CONNECTOR_CHANGES,  # only the power changed: nothing to report
                      connector(1, ConnectorStatus.PREPARING, plugged=True, power_w=10))
    await bus.publish(contract.CONNECTOR_CHANGES, connector(
        1, ConnectorStatus.FAULTED, error_code=ConnectorErrorCode.GROUND_FAILURE))
    await bus.publish(contract.CONNECTOR_CHANGES, connector(2, ConnectorStatus.AVAILABLE))
    last = await csms.wait_for_call("StatusNotification", count=6, timeout_s=10)

    later = [(c.payload["connectorId"], c.payload["status"], c.payload["errorCode"])
             for c in csms.calls("StatusNotification")[3:]]
    assert later[:2] == [(1, "Preparing", "NoError"), (1, "Faulted", "GroundFailure")]
    assert (2, "Available", "NoError") in later
    assert len(later) == 3, later
    assert last.payload["timestamp"].endswith("Z")


async def test_heartbeat_at_the_interval_the_csms_gave(csms: Csms, start_ocpp16) -> None:
    """OCTT TC_001: Heartbeat at the interval of the Accepted BootNotification.conf."""
    csms.behaviour.heartbeat_interval_s = 1
    start_ocpp16(csms.url)
    await csms.wait_for_call("Heartbeat", count=2, timeout_s=10)
    boot = csms.calls("BootNotification")
    assert len(boot) == 1 and boot[0].payload["chargePointModel"] == "ocpp16 test station"


async def test_pending_registration_retries_boot_after_the_interval_and_sends_nothing_else(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    """OCTT TC_002 (cold boot, Pending): nothing but BootNotification until Accepted."""
    csms.behaviour.registration = RegistrationStatus.pending
    csms.behaviour.heartbeat_interval_s = 1
    start_ocpp16(csms.url)
    await bus.publish(contract.SESSIONS, SessionStarted(session_id="early", connector_id=1, id_tag="EARLY1",
                                                        meter_start_wh=0))
    await csms.wait_for_call("BootNotification", count=2)

    async def pending() -> bool:
        link = await bus.get(contract.OCPP_LINK)
        return link is not None and link.registration == "Pending" and link.queued_messages == 1

    await async_wait_until(pending, what="OCPP_LINK Pending with the StartTransaction queued")
    csms.behaviour.registration = RegistrationStatus.accepted
    await csms.wait_for_call("StartTransaction", timeout_s=10)

    actions = [c.action for c in csms.received]
    boots = csms.calls("BootNotification")
    assert actions[:len(boots)] == ["BootNotification"] * len(boots)  # nothing else before Accepted
    assert boots[1].at - boots[0].at >= timedelta(seconds=0.9)  # the interval of the Pending answer


async def test_a_short_station_fault_is_reported_for_connector_0(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    await bus.set(contract.STATION, StationState(status=ConnectorStatus.AVAILABLE, estop=False,
                                                 io_online=True))
    start_ocpp16(csms.url)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)

    await bus.publish(contract.STATION_CHANGES, StationState(status=ConnectorStatus.FAULTED,
                                                             estop=True, io_online=True))
    await bus.publish(contract.STATION_CHANGES, StationState(status=ConnectorStatus.AVAILABLE,
                                                             estop=False, io_online=True))
    await csms.wait_for_call("StatusNotification", count=5, timeout_s=10)
    station = [c.payload["status"] for c in csms.calls("StatusNotification") if c.payload["connectorId"] == 0]
    assert station == ["Available", "Faulted", "Available"]
