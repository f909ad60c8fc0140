"""smartw obeying what ocpp16 publishes about sessions (workers/smartw/ocpp_rules.py):
ConnectionTimeOut, StopTransactionOnEVSideDisconnect, the idTag's group from StartTransaction.conf,
the energy allowance of a refused idTag, and a card of the same group stopping a session.

ocpp16's part is played on the real bus: the test writes contract.SESSION_RULES, OCPP_TRANSACTION
and OCPP_DEAUTHORIZED as ocpp16 does and answers AUTHORIZE. smartw's station logic runs in
process on the simulated station's wiring (ops/station.sim.toml: 1 CCS, 2 Type 2) over a
recording stand-in for the contactors and controller outputs; the meters are published at zero
power, so a stop or a suspension completes at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from bus import Bus, contract
from bus.enums import AuthorizationStatus, ConnectorStatus, StartSource, StopReason
from bus.messages import (
    AuthorizeReply,
    AuthorizeRequest,
    Deauthorized,
    MeterReading,
    OcppTransaction,
    ReservationHold,
    Reservations,
    SessionRules,
    SessionStarted,
    SessionStopped,
    StartRequest,
    utcnow,
)
from tests.support.waiting import async_wait_until
from webapp.env import REPO_ROOT
from webapp.station.models import ChargingSession
from workers.common.station_config import StationConfig, load_station_config
from workers.drivers.controller import ControllerSnapshot, EvState
from workers.drivers.io_module import IoSnapshot
from workers.smartw import journal
from workers.smartw.connector import ActiveSession, ConnectorRuntime, PendingStart
from workers.smartw.station import StationLogic
from workers.smartw.status import DEAUTHORIZED, EV_DISCONNECTED
from workers.smartw.timeline import TimelineWriter

CCS, TYPE2 = 1, 2  # connector ids in ops/station.sim.toml
OWNER, CHILD, STRANGER, OUTSIDER = "OWNER1", "CHILD1", "STRANGER1", "OUTSIDER1"
GROUP = "GROUP1"
METER_START_WH = 1_000.0


@dataclass
class RecordingHardware:
    """The contactors, cable locks and controller outputs smartw commands, in order; a lock's
    position switch follows its coil at once."""

    commands: list[tuple[str, int, bool, float]] = field(default_factory=list)

    async def set_lock(self, connector_id: int, locked: bool) -> None:
        self.commands.append(("lock", connector_id, locked, 0.0))

    async def read_io(self) -> IoSnapshot:
        locks = {c[1]: c[2] for c in self.commands if c[0] == "lock"}
        contactors = {c[1]: c[2] for c in self.commands if c[0] == "contactor"}
        return IoSnapshot(estop_pressed=False, contactors_closed=contactors, locks_locked=locks)

    async def set_output(self, connector_id: int, enabled: bool, power_limit_w: float) -> None:
        self.commands.append(("output", connector_id, enabled, power_limit_w))

    async def set_contactor(self, connector_id: int, closed: bool) -> None:
        self.commands.append(("contactor", connector_id, closed, 0.0))

    def contactor(self, connector_id: int) -> bool | None:
        moves = [c[2] for c in self.commands if c[:2] == ("contactor", connector_id)]
        return moves[-1] if moves else None

    def outputs(self, connector_id: int) -> list[tuple[bool, float]]:
        return [(c[2], c[3]) for c in self.commands if c[:2] == ("output", connector_id)]


@dataclass
class Ocpp16Authorize:
    """ocpp16's AUTHORIZE: every idTag is accepted, CHILD belongs to GROUP, OUTSIDER to another."""

    asked: list[str] = field(default_factory=list)
    parents: dict[str, str] = field(default_factory=lambda: {CHILD: GROUP, OUTSIDER: "ELSEWHERE"})

    async def authorize(self, request: AuthorizeRequest) -> AuthorizeReply:
        self.asked.append(request.id_tag)
        return AuthorizeReply(status=AuthorizationStatus.ACCEPTED,
                              parent_id_tag=self.parents.get(request.id_tag))


@pytest.fixture(scope="module")
def config() -> StationConfig:
    data_dir = Path(os.environ["STATION_DATA_DIR"])
    return load_station_config(REPO_ROOT / "ops" / "station.sim.toml", data_dir=data_dir)


@pytest.fixture
def hardware() -> RecordingHardware:
    return RecordingHardware()


@pytest.fixture
async def logic(config: StationConfig, bus: Bus, hardware: RecordingHardware,
                meters: dict[int, float]) -> AsyncIterator[StationLogic]:
    """smartw's station logic; the meters are read until its stops have ended. Its session
    timeline keeps nothing (capacity 0): it is not under test here, and its writer thread would
    contend for the test's in-memory database, which has no busy timeout (a station's file
    database in WAL mode has one)."""
    station = StationLogic(config, bus, hardware)  # type: ignore[arg-type]
    station.timeline.writer = TimelineWriter(capacity=0)
    try:
        yield station
    finally:
        await station.requests.drain()


@pytest.fixture
async def meters(bus: Bus) -> AsyncIterator[dict[int, float]]:
    """counters' part: each connector's register (the test may move it), at zero power."""
    registers = {CCS: METER_START_WH, TYPE2: METER_START_WH}

    async def publish() -> None:
        while True:
            for connector_id, energy_wh in registers.items():
                name = f"connector{connector_id}"
                reading = MeterReading(meter=name, energy_wh=energy_wh, power_w=0.0)
                await bus.set(contract.METER, reading, meter=name)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(publish())
    await async_wait_until(lambda: bus.get(contract.METER, meter=f"connector{TYPE2}"), what="a first reading")
    try:
        yield registers
    finally:
        task.cancel()


@pytest.fixture
async def csms(bus: Bus) -> AsyncIterator[Ocpp16Authorize]:
    fake, stop = Ocpp16Authorize(), asyncio.Event()
    server = asyncio.create_task(bus.serve(contract.AUTHORIZE, fake.authorize, stop=stop))
    try:
        yield fake
    finally:
        stop.set()
        await server


def plug(connector: ConnectorRuntime, state: EvState = EvState.C) -> None:
    connector.controller = ControllerSnapshot(ev_state=state, soc=None, target_soc=None,
                                              ev_max_power_w=11_000, error_code=0)


async def running(connector: ConnectorRuntime, session_id: str, id_tag: str = OWNER,
                  parent: str | None = None) -> None:
    """A session smartw started earlier: its row, and the EV charging."""
    started = utcnow()
    await ChargingSession.objects.acreate(session_id=session_id, connector_id=connector.id,
                                          standard=connector.config.standard.value, id_tag=id_tag,
                                          started_at=started, meter_start_wh=METER_START_WH,
                                          parent_id_tag=parent or "", start_published=True)
    connector.session = ActiveSession(session_id=session_id, id_tag=id_tag, started_at=started,
                                      meter_start_wh=METER_START_WH, parent_id_tag=parent)
    plug(connector)


async def session_events(bus: Bus) -> list[SessionStarted | SessionStopped]:
    _, deliveries = await bus.tail(contract.SESSIONS, "0", block_ms=100)
    return [delivery.message for delivery in deliveries]


async def stopped(bus: Bus, session_id: str) -> SessionStopped | None:
    return next((e for e in await session_events(bus)
                 if isinstance(e, SessionStopped) and e.session_id == session_id), None)


async def meter_at(logic: StationLogic, meters: dict[int, float], connector_id: int,
                   energy_wh: float) -> None:
    """Move the register and wait until smartw has read the new value."""
    meters[connector_id] = energy_wh

    async def read() -> bool:
        reading = await logic.control.fresh_meter(logic.connectors[connector_id])
        return reading is not None and reading.energy_wh == energy_wh
    await async_wait_until(read, what=f"connector {connector_id}'s meter at {energy_wh} Wh")


def status(logic: StationLogic, connector_id: int) -> tuple[ConnectorStatus, str]:
    state = logic.connectors[connector_id].snapshot(None)
    return state.status, state.info


# ---- the rules on the bus ------------------------------------------------------------------


async def test_session_rules_come_from_the_bus_key_and_default_while_it_is_missing_or_broken(
        bus: Bus, logic: StationLogic, redis_client, caplog: pytest.LogCaptureFixture) -> None:
    await logic.ocpp.refresh(bus)
    assert logic.ocpp.rules == SessionRules()

    await bus.set(contract.SESSION_RULES,
                  SessionRules(connection_timeout_s=7, stop_on_ev_side_disconnect=False))
    await logic.ocpp.refresh(bus)
    assert (logic.ocpp.connection_timeout_s, logic.ocpp.rules.stop_on_ev_side_disconnect) == (7, False)

    redis_client.set(bus.names.key(contract.SESSION_RULES.format()), '{"connection_timeout_s": -1}')
    with caplog.at_level(logging.ERROR, logger="workers.smartw.ocpp_rules"):
        await logic.ocpp.refresh(bus)
        await logic.ocpp.refresh(bus)
    assert logic.ocpp.rules == SessionRules()
    reported = [r for r in caplog.records if "ocpp:session_rules" in r.getMessage()]
    assert len(reported) == 1  # once, not every cycle


async def test_a_waiting_start_lapses_after_connection_timeout_to_available_or_finishing(
        bus: Bus, logic: StationLogic) -> None:
    """OCPP B1 (TC_004_2_CS, TC_011_2_CS) and B6: a start asked 5 s ago waits while
    ConnectionTimeOut is 120 s; the CSMS lowers it to 2 s and the waits end at the next cycle:
    Available without an EV, Finishing with one plugged (the cable stays in)."""
    ccs, type2 = logic.connectors[CCS], logic.connectors[TYPE2]
    asked_at = time.monotonic() - 5
    ccs.pending = PendingStart(id_tag=OWNER, asked_at=asked_at)  # a remote start waiting for the EV
    plug(type2, EvState.B)
    type2.pending = PendingStart(id_tag=None, asked_at=asked_at)  # the HMI's Start waiting for a card
    logic.requests.pending_card = PendingStart(id_tag=STRANGER, asked_at=asked_at)
    await bus.set(contract.SESSION_RULES, SessionRules(connection_timeout_s=120))
    await logic.ocpp.refresh(bus)
    await logic._follow_evs()
    assert status(logic, CCS)[0] is ConnectorStatus.PREPARING
    assert status(logic, TYPE2)[0] is ConnectorStatus.PREPARING

    await bus.set(contract.SESSION_RULES, SessionRules(connection_timeout_s=2))
    await logic.ocpp.refresh(bus)
    await logic._follow_evs()
    assert status(logic, CCS)[0] is ConnectorStatus.AVAILABLE
    assert status(logic, TYPE2)[0] is ConnectorStatus.FINISHING
    assert logic.requests.pending_card is None


# ---- EV side disconnected ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_an_ac_session_waits_for_its_ev_when_stop_on_ev_side_disconnect_is_false(
        bus: Bus, logic: StationLogic, hardware: RecordingHardware, meters: dict[int, float]) -> None:
    """TC_005_3_CS: unplugged -> SuspendedEV "ev_disconnected", the contactor opens, the session
    goes on; plugged again -> the contactor closes while the output is off, and power is shared."""
    type2 = logic.connectors[TYPE2]
    await running(type2, "ac-1")
    await bus.set(contract.SESSION_RULES, SessionRules(stop_on_ev_side_disconnect=False))
    await logic.ocpp.refresh(bus)

    plug(type2, EvState.A)
    await logic._follow_evs()
    await logic.requests.drain()
    assert type2.session is not None and not type2.stopping and type2.ev_away
    assert status(logic, TYPE2) == (ConnectorStatus.SUSPENDED_EV, EV_DISCONNECTED)
    assert hardware.contactor(TYPE2) is False and hardware.outputs(TYPE2)[-1] == (False, 0.0)
    assert not type2.snapshot(None).contactor_closed
    await logic._share_power()
    assert hardware.outputs(TYPE2)[-1] == (False, 0.0)  # nothing offered while the EV is away

    plug(type2, EvState.B)
    await logic.requests.ev_plugged(type2)
    assert not type2.ev_away and hardware.contactor(TYPE2) is True
    last_output = max(i for i, c in enumerate(hardware.commands) if c[:2] == ("output", TYPE2))
    closing = max(i for i, c in enumerate(hardware.commands) if c[:2] == ("contactor", TYPE2))
    assert last_output < closing and hardware.commands[last_output][2] is False  # closed without power
    plug(type2, EvState.C)
    await logic._share_power()
    assert hardware.outputs(TYPE2)[-1][0] is True and hardware.outputs(TYPE2)[-1][1] > 0
    assert await stopped(bus, "ac-1") is None


@pytest.mark.django_db(transaction=True)
async def test_unplugging_ends_the_session_when_the_key_is_true_and_always_on_a_dc_connector(
        bus: Bus, logic: StationLogic, meters: dict[int, float]) -> None:
    """TC_005_1_CS / TC_005_2_CS: StopTransactionOnEVSideDisconnect=true -> EVDisconnected. A DC
    standard ends its session when the plug leaves, so false changes nothing there."""
    ccs, type2 = logic.connectors[CCS], logic.connectors[TYPE2]
    await running(ccs, "dc-1")
    await running(type2, "ac-2")
    await bus.set(contract.SESSION_RULES, SessionRules(stop_on_ev_side_disconnect=False))
    await logic.ocpp.refresh(bus)
    plug(ccs, EvState.A)
    await logic._follow_evs()
    await bus.set(contract.SESSION_RULES, SessionRules(stop_on_ev_side_disconnect=True))
    await logic.ocpp.refresh(bus)
    plug(type2, EvState.A)
    await logic._follow_evs()
    await logic.requests.drain()

    for session_id in ("dc-1", "ac-2"):
        event = await stopped(bus, session_id)
        assert event is not None and event.reason is StopReason.EV_DISCONNECTED, session_id
    assert status(logic, CCS)[0] is status(logic, TYPE2)[0] is ConnectorStatus.AVAILABLE  # fixed cables


# ---- an idTag the CSMS refused ---------------------------------------------------------------------


async def test_a_refused_idtag_gets_no_power_past_its_energy_allowance(
        bus: Bus, logic: StationLogic, hardware: RecordingHardware, meters: dict[int, float]) -> None:
    """TC_037_2_CS with MaxEnergyOnInvalidId 500 Wh: the session charges on until it has delivered
    500 Wh, then SuspendedEVSE "deauthorized" with 0 W offered. A notice for another session of
    the connector is ignored."""
    type2 = logic.connectors[TYPE2]
    type2.session = ActiveSession(session_id="s-1", id_tag=STRANGER, started_at=utcnow(),
                                  meter_start_wh=METER_START_WH)
    plug(type2)
    notice = Deauthorized(connector_id=TYPE2, session_id="other", id_tag=STRANGER, max_energy_wh=0)
    await bus.set(contract.OCPP_DEAUTHORIZED, notice, connector_id=TYPE2)
    await logic.ocpp.refresh(bus)
    assert type2.session.energy_allowance_wh is None

    mine = notice.model_copy(update={"session_id": "s-1", "max_energy_wh": 500})
    await bus.set(contract.OCPP_DEAUTHORIZED, mine, connector_id=TYPE2)
    await meter_at(logic, meters, TYPE2, METER_START_WH + 200)
    await logic.ocpp.refresh(bus)
    await logic._share_power()
    assert type2.session.energy_allowance_wh == 500 and not type2.power_withheld
    assert hardware.outputs(TYPE2)[-1][1] > 0
    assert status(logic, TYPE2)[0] is ConnectorStatus.CHARGING

    await meter_at(logic, meters, TYPE2, METER_START_WH + 500)
    assert type2.power_withheld
    await logic._share_power()
    assert hardware.outputs(TYPE2)[-1] == (True, 0.0)
    assert status(logic, TYPE2) == (ConnectorStatus.SUSPENDED_EVSE, DEAUTHORIZED)


# ---- the idTag's group ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_card_of_the_sessions_group_stops_it_and_other_cards_start_nothing_there(
        bus: Bus, logic: StationLogic, csms: Ocpp16Authorize, meters: dict[int, float]) -> None:
    """TC_069_CS: the session's idTag belongs to GROUP; a card without a group and a card of
    another group stop nothing (they wait for an EV to be plugged elsewhere), a card of GROUP
    stops it (Local, with its own idTag)."""
    ccs = logic.connectors[CCS]
    await running(ccs, "g-1", parent=GROUP)

    await logic.requests.card(STRANGER)
    await logic.requests.card(OUTSIDER)
    assert not ccs.stopping and ccs.session is not None
    assert logic.requests.pending_card is not None and logic.requests.pending_card.id_tag == OUTSIDER

    await logic.requests.card(CHILD)
    await logic.requests.drain()
    assert csms.asked == [STRANGER, OUTSIDER, CHILD]
    event = await stopped(bus, "g-1")
    assert event is not None and (event.reason, event.id_tag) == (StopReason.LOCAL, CHILD)


@pytest.mark.django_db(transaction=True)
async def test_the_group_start_transaction_conf_gave_reaches_the_session_and_its_row(
        bus: Bus, logic: StationLogic, meters: dict[int, float]) -> None:
    ccs = logic.connectors[CCS]
    await running(ccs, "p-1")
    older = OcppTransaction(connector_id=CCS, session_id="older", transaction_id=3, parent_id_tag="WRONG")
    await bus.set(contract.OCPP_TRANSACTION, older, connector_id=CCS)
    await logic.ocpp.refresh(bus)
    assert ccs.session is not None and ccs.session.parent_id_tag is None

    conf = OcppTransaction(connector_id=CCS, session_id="p-1", transaction_id=4, parent_id_tag=GROUP)
    await bus.set(contract.OCPP_TRANSACTION, conf, connector_id=CCS)
    await logic.ocpp.refresh(bus)
    await logic.requests.drain()
    assert ccs.session.parent_id_tag == GROUP
    row = await ChargingSession.objects.aget(session_id="p-1")
    assert row.parent_id_tag == GROUP


@pytest.mark.django_db(transaction=True)
async def test_a_remote_start_keeps_the_group_and_the_reservation_in_the_row_for_a_replayed_start(
        bus: Bus, logic: StationLogic, csms: Ocpp16Authorize, meters: dict[int, float]) -> None:
    """A remote start names the idTag's group (ocpp16 knew it): the reservation of that group is
    used without an Authorize, and the row keeps both, so a SessionStarted published again after
    a crash still names the reservation."""
    type2 = logic.connectors[TYPE2]
    plug(type2, EvState.B)
    hold = ReservationHold(reservation_id=7, connector_id=TYPE2, id_tag=OWNER, parent_id_tag=GROUP,
                           expires_at=utcnow() + timedelta(minutes=10))
    await bus.set(contract.RESERVATIONS, Reservations(holds=(hold,)))
    await logic.reservations.refresh(bus)

    result = await logic.requests.start_command(StartRequest(
        connector_id=TYPE2, id_tag=CHILD, source=StartSource.REMOTE, authorized=True, parent_id_tag=GROUP))
    assert result.accepted, result
    assert csms.asked == []
    assert type2.session is not None and type2.session.parent_id_tag == GROUP
    row = await ChargingSession.objects.aget(session_id=type2.session.session_id)
    assert (row.parent_id_tag, row.reservation_id) == (GROUP, 7)

    await ChargingSession.objects.filter(pk=row.pk).aupdate(start_published=False)  # the crash's window
    assert await journal.republish_unconfirmed(bus) == 1
    starts = [e for e in await session_events(bus) if isinstance(e, SessionStarted)]
    assert [s.reservation_id for s in starts] == [7, 7]
