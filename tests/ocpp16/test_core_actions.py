"""ChangeAvailability, Reset and UnlockConnector at the protocol level: ocpp16 as a real process
against the test CSMS, with smartw and chargepoint played by the test on the real bus.

The whole station's side of the same cases (smartw's real state, a real restart by
chargepoint, Unavailable kept over a reset) is in tests/e2e/test_reset_unlock.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from ocpp.v16 import call

from bus import Bus, contract
from bus.enums import ConnectorStatus, Standard, StopReason
from bus.messages import (
    AvailabilityReply,
    ChangeAvailabilityRequest,
    CommandResult,
    ConnectorState,
    RestartRequest,
    SessionStarted,
    SessionStopped,
    StopRequest,
    utcnow,
)
from tests.ocpp16.conftest import CHARGE_POINT_ID, Ocpp16Process
from tests.support.bus_servers import serving
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms

STANDARDS = {1: Standard.CCS, 2: Standard.TYPE2}  # the connectors of tests/ocpp16/conftest.py


class FakeSmartw:
    """smartw as ocpp16 sees it: connector keys and changes, AVAILABILITY and STOP answered, a
    stopped session ends with a SessionStopped event carrying the reason it was asked for."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.availability_reply: AvailabilityReply | None = AvailabilityReply(status="Accepted")
        self.availability_asked: list[ChangeAvailabilityRequest] = []
        self.stops: list[StopRequest] = []
        self.stop_fails = False
        self.sessions: dict[int, str] = {}

    async def show(self, connector_id: int, status: ConnectorStatus, session_id: str | None = None) -> None:
        state = ConnectorState(connector_id=connector_id, standard=STANDARDS[connector_id], status=status,
                               session_id=session_id, plugged=status is not ConnectorStatus.AVAILABLE)
        await self.bus.set(contract.CONNECTOR, state, connector_id=connector_id)
        await self.bus.publish(contract.CONNECTOR_CHANGES, state)

    async def start_session(self, connector_id: int, session_id: str) -> None:
        self.sessions[connector_id] = session_id
        await self.show(connector_id, ConnectorStatus.CHARGING, session_id)
        await self.bus.publish(contract.SESSIONS, SessionStarted(
            session_id=session_id, connector_id=connector_id, id_tag="TAG1", meter_start_wh=1000))

    async def availability(self, request: ChangeAvailabilityRequest) -> AvailabilityReply:
        self.availability_asked.append(request)
        if self.availability_reply is None:
            raise RuntimeError("smartw cannot save the setting")  # the bus answers HandlerError
        if request.connector_id > 0 and self.availability_reply.status == "Accepted":
            await self.show(request.connector_id, ConnectorStatus.AVAILABLE if request.operative
                            else ConnectorStatus.UNAVAILABLE)
        return self.availability_reply

    async def stop(self, request: StopRequest) -> CommandResult:
        self.stops.append(request)
        if self.stop_fails:
            raise RuntimeError("smartw lost its controller")  # the bus answers HandlerError
        session_id = self.sessions.pop(request.connector_id, None)
        if session_id is None:
            return CommandResult(accepted=False, reason="no_session")
        await self.show(request.connector_id, ConnectorStatus.FINISHING)
        await self.bus.publish(contract.SESSIONS, SessionStopped(
            session_id=session_id, connector_id=request.connector_id, meter_stop_wh=1500,
            reason=request.reason))
        return CommandResult(accepted=True, reason="stopping")


@dataclass
class FakeChargepoint:
    """chargepoint's RESTART command; notes how many StopTransactions the CSMS had by then."""

    csms: Csms
    restarts: list[tuple[RestartRequest, int, datetime]] = field(default_factory=list)

    async def restart(self, request: RestartRequest) -> CommandResult:
        self.restarts.append((request, len(self.csms.calls("StopTransaction")), utcnow()))
        return CommandResult(accepted=True, reason="restarting")


@pytest.fixture
async def smartw(bus: Bus) -> AsyncIterator[FakeSmartw]:
    fake = FakeSmartw(bus)
    for connector_id in STANDARDS:
        await fake.show(connector_id, ConnectorStatus.AVAILABLE)
    async with serving("smartw", {contract.AVAILABILITY: fake.availability, contract.STOP: fake.stop}):
        yield fake


@pytest.fixture
async def chargepoint(redis_client, csms: Csms) -> AsyncIterator[FakeChargepoint]:
    fake = FakeChargepoint(csms)
    async with serving("chargepoint", {contract.RESTART: fake.restart}):
        yield fake


async def _online(csms: Csms, start_ocpp16, boots: int = 1) -> Ocpp16Process:
    process = start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification", count=boots, timeout_s=20)
    await csms.wait_for_call("StatusNotification", count=3 * boots, timeout_s=20)
    return process


async def _status_sent(csms: Csms, connector_id: int, status: str) -> bool:
    return any(c.payload["connectorId"] == connector_id and c.payload["status"] == status
               for c in csms.calls("StatusNotification"))


async def _charging(csms: Csms, smartw: FakeSmartw, bus: Bus, connector_id: int) -> None:
    await smartw.start_session(connector_id, f"session-{connector_id}")
    await csms.wait_for_call("StartTransaction", timeout_s=10)

    async def known() -> bool:
        running = await bus.get(contract.OCPP_TRANSACTION, connector_id=connector_id)
        return running is not None and running.transaction_id is not None
    await async_wait_until(known, what="the transactionId on the bus")


# ---- ChangeAvailability -------------------------------------------------------------------


async def test_change_availability_is_smartws_answer_and_the_new_status_follows(
        csms: Csms, smartw: FakeSmartw, start_ocpp16) -> None:
    """TC_013/TC_034 rely on it: Inoperative is smartw's setting, announced by its new state."""
    await _online(csms, start_ocpp16)

    result = await csms.send(CHARGE_POINT_ID, call.ChangeAvailability(connector_id=2, type="Inoperative"))

    assert result.status == "Accepted"
    assert smartw.availability_asked == [ChangeAvailabilityRequest(connector_id=2, operative=False)]
    await async_wait_until(lambda: _status_sent(csms, 2, "Unavailable"),
                           what="StatusNotification Unavailable for connector 2")
    smartw.availability_reply = AvailabilityReply(status="Scheduled")
    result = await csms.send(CHARGE_POINT_ID, call.ChangeAvailability(connector_id=0, type="Inoperative"))
    assert result.status == "Scheduled"
    assert smartw.availability_asked[-1] == ChangeAvailabilityRequest(connector_id=0, operative=False)
    smartw.availability_reply = AvailabilityReply(status="Rejected")
    result = await csms.send(CHARGE_POINT_ID, call.ChangeAvailability(connector_id=1, type="Operative"))
    assert result.status == "Rejected"


async def test_change_availability_is_rejected_for_an_unknown_connector_or_a_failing_smartw(
        csms: Csms, smartw: FakeSmartw, start_ocpp16) -> None:
    await _online(csms, start_ocpp16)
    for connector_id in (3, 99, -1):
        result = await csms.send(CHARGE_POINT_ID, call.ChangeAvailability(connector_id=connector_id,
                                                                          type="Inoperative"))
        assert result.status == "Rejected", connector_id
    assert smartw.availability_asked == [], "smartw is not asked about connectors it does not have"

    smartw.availability_reply = None
    result = await csms.send(CHARGE_POINT_ID, call.ChangeAvailability(connector_id=1, type="Inoperative"))
    assert result.status == "Rejected"
    assert len(smartw.availability_asked) == 1


MALFORMED = [
    ("ChangeAvailability", {"connectorId": 1, "type": "Sometimes"}),
    ("ChangeAvailability", {"connectorId": "one", "type": "Inoperative"}),
    ("Reset", {"type": "Warm"}),
    ("Reset", {}),
    ("UnlockConnector", {"connectorId": 1.5}),
    ("UnlockConnector", {"connectorId": 1, "force": True}),
]


async def test_malformed_requests_get_a_call_error_and_change_nothing(
        csms: Csms, smartw: FakeSmartw, chargepoint: FakeChargepoint, start_ocpp16) -> None:
    await _online(csms, start_ocpp16)
    for index, (action, payload) in enumerate(MALFORMED):
        await csms.send_raw(CHARGE_POINT_ID, json.dumps([2, f"bad-{index}", action, payload]))

    await async_wait_until(lambda: _replies(csms, len(MALFORMED)), what="an answer to each malformed CALL")
    assert [(reply[0], reply[1]) for reply in csms.raw_replies] == \
        [(4, f"bad-{index}") for index in range(len(MALFORMED))]  # CALLERRORs, in order
    result = await csms.send(CHARGE_POINT_ID, call.UnlockConnector(connector_id=7))
    assert result.status == "NotSupported"  # still connected and answering
    assert (smartw.availability_asked, smartw.stops, chargepoint.restarts) == ([], [], [])


async def _replies(csms: Csms, count: int) -> bool:
    return len(csms.raw_replies) >= count


# ---- Reset --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Hard", "Soft"])
async def test_reset_without_transaction_restarts_the_station_and_it_boots_again(
        csms: Csms, smartw: FakeSmartw, chargepoint: FakeChargepoint, start_ocpp16, kind: str) -> None:
    """TC_013 (hard) / TC_014 (soft): Reset.conf Accepted, restart, BootNotification again."""
    process = await _online(csms, start_ocpp16)

    result = await csms.send(CHARGE_POINT_ID, call.Reset(type=kind))

    assert result.status == "Accepted"
    await async_wait_until(lambda: _restarts(chargepoint), what="a restart request to chargepoint")
    request, _, _ = chargepoint.restarts[0]
    assert request == RestartRequest(kind=kind.lower(), reason=f"OCPP Reset {kind}")
    assert smartw.stops == []
    await process.stopped()  # what chargepoint does to every service ...
    await _online(csms, start_ocpp16, boots=2)  # ... before it starts them again
    assert not csms.calls("StopTransaction")


@pytest.mark.parametrize(("kind", "reason"), [("Hard", StopReason.HARD_RESET),
                                              ("Soft", StopReason.SOFT_RESET)])
async def test_reset_with_transaction_stops_it_first_and_restarts_after_its_stop_transaction(
        bus: Bus, csms: Csms, smartw: FakeSmartw, chargepoint: FakeChargepoint, start_ocpp16,
        kind: str, reason: StopReason) -> None:
    """TC_015 (hard, reason HardReset) / TC_016 (soft, reason SoftReset)."""
    process = await _online(csms, start_ocpp16)
    await _charging(csms, smartw, bus, 1)

    assert (await csms.send(CHARGE_POINT_ID, call.Reset(type=kind))).status == "Accepted"

    await async_wait_until(lambda: _restarts(chargepoint), what="a restart request to chargepoint")
    assert smartw.stops == [StopRequest(connector_id=1, reason=reason)]
    stop = await csms.wait_for_call("StopTransaction")
    assert stop.payload["reason"] == str(reason)
    assert stop.payload["transactionId"] == csms.calls("StartTransaction")[0].response["transactionId"]
    request, stops_by_then, asked_at = chargepoint.restarts[0]
    assert (request.kind, stops_by_then) == (kind.lower(), 1)
    assert stop.at <= asked_at
    await process.stopped()
    await _online(csms, start_ocpp16, boots=2)
    assert len(csms.calls("StopTransaction")) == 1, "a delivered StopTransaction is never sent again"


async def test_reset_without_a_chargepoint_to_restart_it_restarts_ocpp16_alone(
        csms: Csms, smartw: FakeSmartw, start_ocpp16) -> None:
    """ResetRetries (default 1): two restart requests nobody answers, then ocpp16 stops itself
    cleanly (a supervisor starts it again) so the Central System still sees a reboot."""
    process = await _online(csms, start_ocpp16)
    assert (await csms.send(CHARGE_POINT_ID, call.Reset(type="Soft"))).status == "Accepted"

    await async_wait_until(lambda: _exited(process), timeout_s=15, what="ocpp16 restarting itself")
    assert process.process is not None and process.process.returncode == 0
    assert "restarting ocpp16 alone" in process.log()
    await _online(csms, start_ocpp16, boots=2)


async def _restarts(chargepoint: FakeChargepoint) -> bool:
    return bool(chargepoint.restarts)


async def _exited(process: Ocpp16Process) -> bool:
    return not process.running


# ---- UnlockConnector ----------------------------------------------------------------------


async def test_unlock_without_transaction_is_not_supported_on_a_fixed_cable_or_unknown_connector(
        csms: Csms, smartw: FakeSmartw, start_ocpp16) -> None:
    """TC_017_2: CCS and (without a declared socket lock) Type 2 have fixed cables; TC_031:
    an unknown connector."""
    await _online(csms, start_ocpp16)
    for connector_id in (1, 2, 0, 3, -5):
        result = await csms.send(CHARGE_POINT_ID, call.UnlockConnector(connector_id=connector_id))
        assert result.status == "NotSupported", connector_id
    assert smartw.stops == []


async def test_unlock_with_transaction_stops_it_with_reason_unlock_command(
        bus: Bus, csms: Csms, smartw: FakeSmartw, start_ocpp16) -> None:
    """TC_018_2: the transaction is finished first (UnlockCommand, then Finishing); the fixed
    cable itself cannot be unlocked."""
    await _online(csms, start_ocpp16)
    await _charging(csms, smartw, bus, 2)

    result = await csms.send(CHARGE_POINT_ID, call.UnlockConnector(connector_id=2))

    assert result.status == "NotSupported"
    assert smartw.stops == [StopRequest(connector_id=2, reason=StopReason.UNLOCK_COMMAND)]
    stop = await csms.wait_for_call("StopTransaction")
    assert stop.payload["reason"] == "UnlockCommand"
    await async_wait_until(lambda: _status_sent(csms, 2, "Finishing"), what="Finishing on connector 2")


async def test_unlock_answers_even_when_smartw_fails_to_stop_the_session(
        bus: Bus, csms: Csms, smartw: FakeSmartw, start_ocpp16) -> None:
    smartw.stop_fails = True
    process = await _online(csms, start_ocpp16)
    await _charging(csms, smartw, bus, 1)

    result = await csms.send(CHARGE_POINT_ID, call.UnlockConnector(connector_id=1))

    assert result.status == "NotSupported"
    assert len(smartw.stops) == 1
    assert "stopping its session failed" in process.log()
    assert not csms.calls("StopTransaction")
