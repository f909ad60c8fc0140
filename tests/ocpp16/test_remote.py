"""CSMS-initiated commands reach smartw over the bus; Authorize goes the other way."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bus import Bus, contract
from bus.enums import AuthorizationStatus, ConnectorStatus, Standard, StartSource, StopReason
from bus.messages import (
    AuthorizeRequest,
    CommandResult,
    ConnectorState,
    SessionStarted,
    StartRequest,
    StopRequest,
)
from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.bus_servers import serving
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms


class FakeSmartw:
    """Answers START/STOP like smartw would, recording what it was asked."""

    def __init__(self) -> None:
        self.starts: list[StartRequest] = []
        self.stops: list[StopRequest] = []
        self.accept = True

    async def start(self, request: StartRequest) -> CommandResult:
        self.starts.append(request)
        return CommandResult(accepted=self.accept, reason="" if self.accept else "busy")

    async def stop(self, request: StopRequest) -> CommandResult:
        self.stops.append(request)
        return CommandResult(accepted=True)


@pytest.fixture
async def smartw(redis_client) -> AsyncIterator[FakeSmartw]:
    fake = FakeSmartw()
    async with serving("smartw", {contract.START: fake.start, contract.STOP: fake.stop}):
        yield fake


async def _online(csms: Csms, start_ocpp16) -> None:
    start_ocpp16(csms.url)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)


async def test_remote_start_asks_smartw_and_answers_with_its_result(
        bus: Bus, csms: Csms, smartw: FakeSmartw, start_ocpp16) -> None:
    """OCTT TC_026 (remote start Rejected when the station refuses), TC_027 (connectorId 0 is
    Rejected, never asked of smartw)."""
    await bus.set(contract.CONNECTOR, ConnectorState(connector_id=1, standard=Standard.CCS,
                                                     status=ConnectorStatus.CHARGING), connector_id=1)
    await bus.set(contract.CONNECTOR, ConnectorState(connector_id=2, standard=Standard.TYPE2,
                                                     status=ConnectorStatus.AVAILABLE), connector_id=2)
    await _online(csms, start_ocpp16)

    assert await csms.remote_start(CHARGE_POINT_ID, "REMOTE1", connector_id=1) == "Accepted"
    assert smartw.starts == [StartRequest(connector_id=1, id_tag="REMOTE1", source=StartSource.REMOTE,
                                          authorized=True)]
    assert await csms.remote_start(CHARGE_POINT_ID, "REMOTE2") == "Accepted"  # picks the free one
    assert smartw.starts[-1].connector_id == 2
    smartw.accept = False
    assert await csms.remote_start(CHARGE_POINT_ID, "REMOTE3", connector_id=2) == "Rejected"
    assert await csms.remote_start(CHARGE_POINT_ID, "REMOTE4", connector_id=0) == "Rejected"
    assert await csms.remote_start(CHARGE_POINT_ID, "REMOTE5", connector_id=9) == "Rejected"
    assert [s.id_tag for s in smartw.starts] == ["REMOTE1", "REMOTE2", "REMOTE3"]  # never asked for 0 or 9


async def test_remote_start_is_rejected_when_smartw_does_not_answer(
        redis_client, csms: Csms, start_ocpp16) -> None:
    await _online(csms, start_ocpp16)
    assert await csms.remote_start(CHARGE_POINT_ID, "NOBODY1", connector_id=1) == "Rejected"


async def test_remote_stop_finds_the_connector_of_the_transaction(
        bus: Bus, csms: Csms, smartw: FakeSmartw, start_ocpp16) -> None:
    """OCTT TC_028 (remote stop of an unknown transaction is Rejected) and TC_012."""
    await _online(csms, start_ocpp16)
    await bus.publish(contract.SESSIONS, SessionStarted(session_id="s-9", connector_id=2, id_tag="CARD9",
                                                        meter_start_wh=0))
    await csms.wait_for_call("StartTransaction")
    running = await async_wait_until(lambda: _known_transaction(bus, 2), what="transactionId on the bus")

    assert await csms.remote_stop(CHARGE_POINT_ID, running.transaction_id + 100) == "Rejected"
    assert smartw.stops == []
    assert await csms.remote_stop(CHARGE_POINT_ID, running.transaction_id) == "Accepted"
    assert smartw.stops == [StopRequest(connector_id=2, reason=StopReason.REMOTE)]


async def test_authorize_over_the_bus_asks_the_csms(bus: Bus, csms: Csms, start_ocpp16) -> None:
    csms.behaviour.rejected_id_tags = {"BLOCKED1"}
    await _online(csms, start_ocpp16)

    good = await bus.request(contract.AUTHORIZE, AuthorizeRequest(id_tag="GOOD1"))
    bad = await bus.request(contract.AUTHORIZE, AuthorizeRequest(id_tag="blocked1"))
    assert (good.status, bad.status) == (AuthorizationStatus.ACCEPTED, AuthorizationStatus.INVALID)
    assert [c.payload for c in csms.calls("Authorize")] == [{"idTag": "GOOD1"}, {"idTag": "blocked1"}]

    await csms.stop()
    await async_wait_until(lambda: _offline(bus), what="ocpp16 noticing the CSMS is gone")
    offline = await bus.request(contract.AUTHORIZE, AuthorizeRequest(id_tag="GOOD1"))
    unknown = await bus.request(contract.AUTHORIZE, AuthorizeRequest(id_tag="NEVERSEEN"))
    # GOOD1 was cached when the CSMS accepted it (LocalAuthorizeOffline); an unknown id is refused
    # offline (AllowOfflineTxForUnknownId is false by default).
    assert (offline.status, unknown.status) == (AuthorizationStatus.ACCEPTED, AuthorizationStatus.INVALID)


async def _known_transaction(bus: Bus, connector_id: int):
    running = await bus.get(contract.OCPP_TRANSACTION, connector_id=connector_id)
    return running if running is not None and running.transaction_id is not None else None


async def _offline(bus: Bus) -> bool:
    link = await bus.get(contract.OCPP_LINK)
    return link is not None and not link.connected
