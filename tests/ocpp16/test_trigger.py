"""TriggerMessage / ExtendedTriggerMessage: the answer first, then the message asked for, with
current information; refused where it cannot be honoured (workers/ocpp16/triggers.py)."""

from __future__ import annotations

from pathlib import Path

from ocpp.v16 import call
from ocpp.v16.enums import RegistrationStatus

from bus import Bus, contract
from bus.enums import ConnectorStatus, Standard
from bus.messages import ConnectorState, MeterReading
from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.database import query
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms, ReceivedCall


async def _station_state(bus: Bus) -> None:
    await bus.set(contract.CONNECTOR, ConnectorState(connector_id=1, standard=Standard.CCS,
                                                     status=ConnectorStatus.CHARGING), connector_id=1)
    await bus.set(contract.CONNECTOR, ConnectorState(connector_id=2, standard=Standard.TYPE2,
                                                     status=ConnectorStatus.AVAILABLE), connector_id=2)
    await bus.set(contract.METER, MeterReading(meter="connector1", energy_wh=12_345.0, power_w=7_000.0),
                  meter="connector1")


async def _online(bus: Bus, csms: Csms, start_ocpp16) -> None:
    await _station_state(bus)
    start_ocpp16(csms.url)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)


async def _trigger(csms: Csms, message: str, connector_id: int | None = None, *,
                   extended: bool = False) -> str:
    request = (call.ExtendedTriggerMessage if extended else call.TriggerMessage)(
        requested_message=message, connector_id=connector_id)
    return str((await csms.send(CHARGE_POINT_ID, request)).status)


async def _sent_after_its_answer(service_db: Path, triggered: ReceivedCall) -> None:
    """The station's frame log: the triggered CALL left after the TriggerMessage CALLRESULT."""
    async def frames() -> list:
        rows = query(service_db, "SELECT id, message_type, action, unique_id FROM station_ocppframe "
                                 "WHERE direction = 'out' ORDER BY id")
        return rows if any(row["unique_id"] == triggered.unique_id for row in rows) else []

    rows = await async_wait_until(frames, what="the frame log")
    position = next(i for i, row in enumerate(rows) if row["unique_id"] == triggered.unique_id)
    answers = [row for row in rows[:position] if row["message_type"] == 3
               and row["action"] in ("TriggerMessage", "ExtendedTriggerMessage")]
    assert answers, f"{triggered.action} left before any TriggerMessage answer"


async def test_each_triggered_message_follows_its_accepted_answer(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """OCTT TC_054_CS: MeterValues, Heartbeat, StatusNotification, DiagnosticsStatusNotification
    and FirmwareStatusNotification, each after TriggerMessage.conf Accepted."""
    await _online(bus, csms, start_ocpp16)

    assert await _trigger(csms, "MeterValues", 1) == "Accepted"
    meter_values = await csms.wait_for_call("MeterValues")
    assert meter_values.payload["connectorId"] == 1
    sampled = meter_values.payload["meterValue"][0]["sampledValue"]
    assert {value["context"] for value in sampled} == {"Trigger"}
    assert any(value["value"] == "12345" for value in sampled)
    await _sent_after_its_answer(service_db, meter_values)

    assert await _trigger(csms, "Heartbeat") == "Accepted"
    await csms.wait_for_call("Heartbeat")

    statuses = len(csms.calls("StatusNotification"))
    assert await _trigger(csms, "StatusNotification", 1) == "Accepted"
    status = await csms.wait_for_call("StatusNotification", count=statuses + 1)
    # the CSMS heard it after the boot already: sent again, as it is now
    assert (status.payload["connectorId"], status.payload["status"]) == (1, "Charging")

    assert await _trigger(csms, "DiagnosticsStatusNotification") == "Accepted"
    assert (await csms.wait_for_call("DiagnosticsStatusNotification")).payload == {"status": "Idle"}
    assert await _trigger(csms, "FirmwareStatusNotification") == "Accepted"
    firmware = await csms.wait_for_call("FirmwareStatusNotification")
    assert firmware.payload == {"status": "Idle"}
    await _sent_after_its_answer(service_db, firmware)


async def test_what_cannot_be_honoured_is_rejected_and_nothing_is_sent(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    """OCTT TC_055_CS: MeterValues for connector NumberOfConnectors + 1 -> Rejected. Errata
    3.35: BootNotification once Accepted -> Rejected."""
    await _online(bus, csms, start_ocpp16)
    calls_before = len(csms.received)

    assert await _trigger(csms, "MeterValues", 3) == "Rejected"
    assert await _trigger(csms, "StatusNotification", -1) == "Rejected"
    assert await _trigger(csms, "MeterValues", 2) == "Rejected"  # no meter reading to report there
    assert await _trigger(csms, "BootNotification") == "Rejected"
    assert await _trigger(csms, "Heartbeat", 7) == "Accepted"  # connectorId does not matter: ignored
    await csms.wait_for_call("Heartbeat")
    sent = [c.action for c in csms.received[calls_before:] if c.action != "SecurityEventNotification"]
    assert sent == ["Heartbeat"]  # (the station's startup security event may come any time)


async def test_boot_notification_is_sent_at_once_while_pending(bus: Bus, csms: Csms, start_ocpp16) -> None:
    """Pending with a long interval: the trigger makes the next BootNotification go now; other
    messages cannot be triggered before Accepted."""
    csms.behaviour.registration = RegistrationStatus.pending
    csms.behaviour.heartbeat_interval_s = 3600  # the interval the station would wait
    await _station_state(bus)
    start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")

    assert await _trigger(csms, "Heartbeat") == "Rejected"
    csms.behaviour.registration = RegistrationStatus.accepted
    assert await _trigger(csms, "BootNotification") == "Accepted"
    await csms.wait_for_call("BootNotification", count=2, timeout_s=5)
    await csms.wait_for_call("StatusNotification", count=3)
    assert not csms.calls("Heartbeat")


async def test_extended_trigger_and_status_notification_of_every_connector(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    await _online(bus, csms, start_ocpp16)
    before = len(csms.calls("StatusNotification"))
    assert await _trigger(csms, "StatusNotification") == "Accepted"  # no connectorId: 0 and all
    await csms.wait_for_call("StatusNotification", count=before + 3)
    assert sorted(c.payload["connectorId"] for c in csms.calls("StatusNotification")[before:]) == [0, 1, 2]

    assert await _trigger(csms, "LogStatusNotification", extended=True) == "Accepted"
    assert (await csms.wait_for_call("LogStatusNotification")).payload == {"status": "Idle"}
    assert await _trigger(csms, "FirmwareStatusNotification", extended=True) == "Accepted"
    assert (await csms.wait_for_call("SignedFirmwareStatusNotification")).payload == {"status": "Idle"}
    assert await _trigger(csms, "SignChargePointCertificate", extended=True) == "Accepted"
    assert "BEGIN CERTIFICATE REQUEST" in (await csms.wait_for_call("SignCertificate")).payload["csr"]
    assert await _trigger(csms, "Heartbeat", extended=True) == "Accepted"
    await csms.wait_for_call("Heartbeat")


MALFORMED = [
    '[2,"t1","TriggerMessage",{"requestedMessage":"StartTransaction"}]',  # not triggerable
    '[2,"t2","TriggerMessage",{"requestedMessage":"LogStatusNotification"}]',  # extended only
    '[2,"t3","TriggerMessage",{"requestedMessage":"Heartbeat","connectorId":"1"}]',  # not an integer
    '[2,"t4","TriggerMessage",{}]',  # requestedMessage missing
]


async def test_malformed_trigger_messages_get_a_call_error_and_trigger_nothing(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    await _online(bus, csms, start_ocpp16)
    calls_before = len(csms.received)

    for frame in MALFORMED:
        await csms.send_raw(CHARGE_POINT_ID, frame)

    async def replies() -> list:
        return csms.raw_replies if len(csms.raw_replies) == len(MALFORMED) else []
    answered = await async_wait_until(replies, what="an answer to each malformed frame")
    assert [(reply[0], reply[1]) for reply in answered] == [(4, f"t{n}") for n in range(1, 5)]
    assert all(reply[2] for reply in answered)  # an OCPP-J error code
    sent = {c.action for c in csms.received[calls_before:]}
    assert not sent & {"StartTransaction", "LogStatusNotification", "Heartbeat"}
