"""A Type 2 socket's cable lock in smartw (workers/smartw/cable_lock.py), over the real IO driver
and the simulated IO module on a real Modbus TCP server: station.toml's rules for a lock, the
lock closing before the contactor (and a start refused when it does not: OCTT TC_024), opening
once no session needs it and never on a live socket, UnlockConnector (TC_017_1, TC_018_1,
TC_030), a lock coming open during a session, and the cable kept locked for its owner
(UnlockConnectorOnEVSideDisconnect false, DeAuthorized)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import ValidationError
from pymodbus.server import ModbusTcpServer

from bus.enums import ConnectorErrorCode, ConnectorStatus, StopReason, UnlockStatus
from bus.messages import SessionRules, UnlockRequest, utcnow
from tests.support.waiting import async_wait_until
from workers.common.redis_server import free_port
from workers.common.station_config import StationConfig, load_station_config
from workers.drivers.controller import ControllerSnapshot, EvState
from workers.sim.devices import absent_devices
from workers.sim.io_module import SimIoModule
from workers.smartw.cable_lock import CableLocks
from workers.smartw.connector import ActiveSession, ConnectorRuntime, PendingStart
from workers.smartw.faults import LOCK_FAILURE
from workers.smartw.modbus_hardware import ModbusStationHardware
from workers.smartw.ocpp_rules import OcppRules
from workers.smartw.sessions import StartRefused
from workers.smartw.station import ContactorInterlock

REPO = Path(__file__).resolve().parents[2]
DELAY_S = 0.05  # the bolt's and the contacts' travel in the simulator
LOCK_TIMEOUT_S = 0.5
SOCKET, FIXED = 2, 1


def connector_entry(cid: int, standard: str, **fields: object) -> dict[str, object]:
    return {"id": cid, "standard": standard, "max_power_kw": 22, "contactor_coil": cid - 1,
            "contactor_feedback": 7 + cid, "meter": {"bus": "tcp", "device_id": cid, "model": "sdm630"},
            "controller": {"bus": "tcp", "device_id": 20 + cid}, **fields}


def station(port: int, *connectors: dict[str, object]) -> StationConfig:
    return StationConfig.model_validate({
        "station": {"max_power_kw": 50},
        "buses": {"tcp": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": port, "timeout_s": 0.5}},
        "io_module": {"bus": "tcp", "device_id": 10, "poll_s": 0.1, "inputs": {"estop": 0},
                      "lock_timeout_s": LOCK_TIMEOUT_S},
        "rfid": {"port": "/dev/null", "baudrate": 9600},
        "connectors": list(connectors) or [connector_entry(FIXED, "CCS"),
                                           connector_entry(SOCKET, "Type2", lock_coil=5, lock_feedback=12)],
    })


# ---- station.toml ----------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "message"), [
    (connector_entry(1, "CCS", lock_coil=5, lock_feedback=12), "for Type 2 sockets; CCS"),
    (connector_entry(1, "Type2", lock_coil=5), "needs both lock_coil and lock_feedback"),
    (connector_entry(1, "Type2", lock_feedback=12), "needs both lock_coil and lock_feedback"),
    (connector_entry(1, "Type2", lock_coil=0, lock_feedback=12),
     "lock_coil and connector 1 coil are both on"),
    (connector_entry(1, "Type2", lock_coil=5, lock_feedback=8), "lock_feedback and connector 1 feedback"),
])
def test_a_lock_is_a_type2_sockets_coil_and_switch_on_free_io_points(entry: dict[str, object],
                                                                     message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        station(15020, entry)


def test_the_simulation_station_has_a_socket_with_a_lock_on_connector_2_only() -> None:
    config = load_station_config(REPO / "ops" / "station.sim.toml", data_dir=REPO / "var")
    assert {c.id: c.has_lock for c in config.connectors} == {1: False, 2: True, 3: False, 4: False}
    socket = config.connector(2)
    assert (socket.lock_coil, socket.lock_feedback.address) == (5, 12)


# ---- the lock in smartw --------------------------------------------------------------------


@dataclass
class Socket:
    io: SimIoModule
    hardware: ModbusStationHardware
    connectors: dict[int, ConnectorRuntime]
    ocpp: OcppRules
    locks: CableLocks
    interlock: ContactorInterlock
    stopped: list[int] = field(default_factory=list)

    @property
    def socket(self) -> ConnectorRuntime:
        return self.connectors[SOCKET]

    async def follow(self) -> None:
        await self.locks.follow(await self.hardware.read_io())

    async def followed_until(self, check, what: str) -> None:
        async def done() -> bool:
            await self.follow()
            return check()
        await async_wait_until(done, timeout_s=3, what=what)

    def plug(self, plugged: bool = True) -> None:
        self.socket.controller = ControllerSnapshot(EvState.B if plugged else EvState.A, None, None, 0.0, 0)

    def begin_session(self, id_tag: str = "CARD1") -> ActiveSession:
        session = ActiveSession(session_id=f"s-{id_tag}", id_tag=id_tag, started_at=utcnow(),
                                meter_start_wh=0)
        self.socket.session = session
        return session

    async def charge(self, id_tag: str = "CARD1") -> ActiveSession:
        """Plug in, lock and close the contactor as a start does, then the session runs."""
        self.plug()
        await self.interlock.set_contactor(SOCKET, True)
        return self.begin_session(id_tag)

    async def end_session(self, reason: StopReason) -> None:
        """What SessionControl.stop does around the lock: contactor open, the hook, no session."""
        connector = self.socket
        await self.hardware.set_contactor(connector.id, False)
        assert connector.session is not None
        self.locks.session_ended(connector, connector.session, reason)
        connector.session, connector.ev_away = None, False

    async def stop_for_unlock(self, connector: ConnectorRuntime) -> bool:
        self.stopped.append(connector.id)
        async with connector.lock:
            await self.end_session(StopReason.UNLOCK_COMMAND)
            connector.stopping = False
        return True


@pytest.fixture
async def wired() -> AsyncIterator[Socket]:
    port = free_port()
    config = station(port)
    io = SimIoModule(config, feedback_delay_s=DELAY_S)
    server = ModbusTcpServer([absent_devices(), *io.devices().values()], address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    await io.attach(server)
    hardware = ModbusStationHardware(config)
    connectors = {c.id: ConnectorRuntime(c) for c in config.connectors}
    ocpp = OcppRules(connectors)
    holder: list[Socket] = []
    locks = CableLocks(connectors, hardware, LOCK_TIMEOUT_S, ocpp, lambda c: holder[0].stop_for_unlock(c))
    refusal = lambda cid: connectors[cid].fault.info if connectors[cid].fault else None  # noqa: E731
    socket = Socket(io, hardware, connectors, ocpp, locks, ContactorInterlock(hardware, refusal, locks))
    holder.append(socket)
    try:
        yield socket
    finally:
        io.detach()
        await hardware.close()
        await server.shutdown()


async def test_the_lock_closes_before_the_contactor_and_opens_once_the_session_is_over(wired: Socket) -> None:
    """The normal end of a session unlocks the cable (ocpp16.md §2.5), after the contactor opened."""
    await wired.charge()
    assert wired.io.lock_locked(SOCKET), "the switch read locked before the contactor was commanded"
    await async_wait_until(lambda: _true(wired.io.conducts(SOCKET)), timeout_s=2, what="contactor closed")

    await wired.follow()
    assert wired.io.lock_locked(SOCKET), "a running session keeps its cable locked"
    await wired.end_session(StopReason.LOCAL)
    await wired.followed_until(lambda: not wired.io.lock_locked(SOCKET), "the cable unlocked")
    assert wired.socket.lock_fault is None


async def test_a_live_socket_is_never_unlocked(wired: Socket) -> None:
    await wired.charge()
    wired.socket.session = None  # a session gone while its contactor still reads closed
    for _ in range(3):
        await wired.follow()
        await asyncio.sleep(DELAY_S)
    assert wired.io.lock_locked(SOCKET) and wired.io.conducts(SOCKET)
    reply = await wired.locks.unlock_command(UnlockRequest(connector_id=SOCKET))
    assert reply.status is UnlockStatus.UNLOCK_FAILED
    await wired.hardware.set_contactor(SOCKET, False)
    await wired.followed_until(lambda: not wired.io.lock_locked(SOCKET), "unlocked once the contactor opened")


async def test_a_lock_that_does_not_close_refuses_the_start_and_faults_until_the_ev_leaves(
        wired: Socket) -> None:
    """TC_024: the plug is half in, the bolt cannot enter: no contactor, no session, Faulted
    with ConnectorLockFailure; the lock opens again to let the plug out."""
    wired.io.inject_fault("lock_stuck2")
    wired.plug()
    wired.socket.pending = PendingStart(id_tag="REMOTE1")
    with pytest.raises(StartRefused) as refused:
        await wired.interlock.set_contactor(SOCKET, True)

    assert refused.value.reason == "lock_failure"
    snapshot = await wired.hardware.read_io()
    assert not snapshot.contactors_closed[SOCKET] and not wired.io.conducts(SOCKET)
    assert not snapshot.lock_coils[SOCKET], "the lock is commanded open again"
    assert wired.socket.pending is None, "the start is over"
    state = wired.socket.snapshot(None)
    assert (state.status, state.error_code, state.info) == (
        ConnectorStatus.FAULTED, ConnectorErrorCode.CONNECTOR_LOCK_FAILURE, "lock_failure")

    wired.io.clear_faults()
    await wired.follow()
    await asyncio.sleep(LOCK_TIMEOUT_S)
    await wired.follow()
    assert wired.socket.fault is LOCK_FAILURE, "the fault stands while the EV is plugged"
    wired.plug(False)
    await wired.follow()
    assert wired.socket.fault is None and wired.socket.snapshot(None).status is ConnectorStatus.AVAILABLE


async def test_a_lock_that_comes_open_during_a_session_is_a_fault(wired: Socket) -> None:
    await wired.charge()
    wired.io.inject_fault("lock_stuck2")
    wired.io.locks[SOCKET].locked = False  # the bolt jumps out and stays out
    await wired.followed_until(lambda: wired.socket.fault is LOCK_FAILURE, "the lock failure")
    # The control cycle now ends the session, ramping down first (station.py _follow_evs).
    await wired.end_session(StopReason.OTHER)
    await wired.follow()
    assert wired.socket.fault is LOCK_FAILURE, "until the EV leaves"


async def test_unlock_connector_stops_the_session_first_then_opens_the_lock(wired: Socket) -> None:
    """TC_017_2/TC_031 (fixed cable, unknown connector), TC_018_1 (with a session), TC_017_1
    (without)."""
    for connector_id in (FIXED, 9):
        reply = await wired.locks.unlock_command(UnlockRequest(connector_id=connector_id))
        assert reply.status is UnlockStatus.NOT_SUPPORTED
    await wired.charge()

    reply = await wired.locks.unlock_command(UnlockRequest(connector_id=SOCKET))

    assert reply.status is UnlockStatus.UNLOCKED
    assert wired.stopped == [SOCKET] and wired.socket.session is None
    assert not wired.io.lock_locked(SOCKET) and not wired.io.conducts(SOCKET)
    reply = await wired.locks.unlock_command(UnlockRequest(connector_id=SOCKET))
    assert reply.status is UnlockStatus.UNLOCKED and wired.stopped == [SOCKET]


async def test_a_lock_that_does_not_open_answers_unlock_failed_and_faults_until_it_opens(
        wired: Socket) -> None:
    """TC_030: the bolt is jammed; UnlockFailed, Faulted (ConnectorLockFailure) until the switch
    reads open, which a later UnlockConnector may achieve."""
    await wired.charge()
    wired.io.inject_fault("lock_stuck2")

    reply = await wired.locks.unlock_command(UnlockRequest(connector_id=SOCKET))

    assert reply.status is UnlockStatus.UNLOCK_FAILED and wired.stopped == [SOCKET]
    assert wired.socket.fault is LOCK_FAILURE and wired.io.lock_locked(SOCKET)
    wired.io.clear_faults()
    reply = await wired.locks.unlock_command(UnlockRequest(connector_id=SOCKET))
    assert reply.status is UnlockStatus.UNLOCKED
    await wired.follow()
    assert wired.socket.fault is None


@pytest.mark.parametrize("reason", [StopReason.EV_DISCONNECTED, StopReason.DE_AUTHORIZED])
async def test_a_cable_stays_locked_for_its_owner_until_their_card_comes_back(
        wired: Socket, reason: StopReason) -> None:
    """UnlockConnectorOnEVSideDisconnect false (TC_005_2: the EV side unplugged ends the session,
    the cable stays locked), and a DeAuthorized stop (OCPP 1.6 §3.5.4)."""
    wired.ocpp.rules = SessionRules(unlock_on_ev_side_disconnect=False)
    await wired.charge("OWNER1")
    if reason is StopReason.EV_DISCONNECTED:
        wired.plug(False)
    await wired.end_session(reason)
    for _ in range(3):
        await wired.follow()
        await asyncio.sleep(DELAY_S)
    assert wired.io.lock_locked(SOCKET)
    assert not wired.locks.release_for_card("STRANGER")

    assert wired.locks.release_for_card("owner1")  # idTags compare without case
    await wired.followed_until(lambda: not wired.io.lock_locked(SOCKET), "the owner's cable released")
    assert not wired.locks.release_for_card("OWNER1")


async def test_unlock_connector_releases_a_held_cable(wired: Socket) -> None:
    await wired.charge()
    await wired.end_session(StopReason.DE_AUTHORIZED)
    reply = await wired.locks.unlock_command(UnlockRequest(connector_id=SOCKET))
    assert reply.status is UnlockStatus.UNLOCKED and not wired.io.lock_locked(SOCKET)
    await wired.follow()
    assert not wired.io.lock_locked(SOCKET)


@pytest.mark.parametrize("unlock_on_ev_side_disconnect", [True, False])
async def test_a_session_waiting_for_its_ev_keeps_the_cable_locked_unless_the_key_says_unlock(
        wired: Socket, unlock_on_ev_side_disconnect: bool) -> None:
    """StopTransactionOnEVSideDisconnect false: the session waits (SuspendedEV), its contactor
    open; UnlockConnectorOnEVSideDisconnect decides the lock, and a returning EV locks again."""
    wired.ocpp.rules = SessionRules(stop_on_ev_side_disconnect=False,
                                    unlock_on_ev_side_disconnect=unlock_on_ev_side_disconnect)
    await wired.charge()
    wired.plug(False)
    wired.socket.ev_away = True
    await wired.hardware.set_contactor(SOCKET, False)
    await asyncio.sleep(DELAY_S * 2)
    for _ in range(3):
        await wired.follow()
        await asyncio.sleep(DELAY_S)
    assert wired.io.lock_locked(SOCKET) is not unlock_on_ev_side_disconnect

    wired.plug()  # the EV is back: the contactor closes again, the lock first
    await wired.interlock.set_contactor(SOCKET, True)
    assert wired.io.lock_locked(SOCKET)


async def _true(value: bool) -> bool:
    return value
