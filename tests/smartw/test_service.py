"""smartw as a real process against the simulator (Modbus TCP) and counters, with the test
playing ocpp16 on the bus (it answers Authorize and reads the session events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bus import Bus, contract
from bus.enums import AuthorizationStatus, ConnectorStatus, StartSource, StopReason
from bus.messages import (
    AuthorizeReply,
    AuthorizeRequest,
    ConnectorState,
    SessionStarted,
    SessionStopped,
    SimAction,
    StartRequest,
    utcnow,
)
from tests.sim.processes import ServiceProcess, SimStation
from tests.support.database import query, sqlite_url
from tests.support.hardware import read_connector_hardware
from tests.support.waiting import async_wait_until
from workers.rfid.service import REPEAT_WINDOW_S

CARD = "0A00B1C2D3"
REJECTED = "DEADBEEF00"


@pytest.fixture
def services(sim_station: SimStation, service_db: Path, tmp_path: Path) -> Iterator[Path]:
    env = {**sim_station.env, "DATABASE_URL": sqlite_url(service_db)}
    children = [ServiceProcess(name, env, tmp_path / f"{name}.log")
                for name in ("workers.counters", "workers.rfid", "workers.smartw")]
    try:
        yield service_db
    finally:
        codes = {child.module: child.stop() for child in reversed(children)}
        assert set(codes.values()) == {0}, \
            "\n".join(child.output() for child in children)


@dataclass
class FakeOcpp:
    """The test's stand-in for ocpp16 on the bus: answers Authorize, records session events."""

    bus: Bus
    events: list[SessionStarted | SessionStopped] = field(default_factory=list)

    async def authorize(self, request: AuthorizeRequest) -> AuthorizeReply:
        accepted = request.id_tag != REJECTED
        status = AuthorizationStatus.ACCEPTED if accepted else AuthorizationStatus.INVALID
        return AuthorizeReply(status=status)

    async def record(self, stop: asyncio.Event) -> None:
        async for delivery in self.bus.consume(contract.SESSIONS, "test", "test", block_ms=100):
            if stop.is_set():
                return
            if delivery is not None:
                self.events.append(delivery.message)
                await delivery.ack()

    async def event(self, kind: type, timeout_s: float = 15.0):
        async def found():
            return next((e for e in self.events if isinstance(e, kind)), None)
        return await async_wait_until(found, timeout_s=timeout_s, what=kind.__name__)


@pytest.fixture
async def ocpp(bus: Bus, services: Path) -> AsyncIterator[FakeOcpp]:
    fake = FakeOcpp(bus)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(bus.serve(contract.AUTHORIZE, fake.authorize, stop=stop)),
             asyncio.create_task(fake.record(stop))]
    try:
        yield fake
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def meter_ready(bus: Bus, connector_id: int) -> None:
    """A remote start needs the meter's reading (meterStart): wait for counters' first poll."""
    async def present():
        return await bus.get(contract.METER, meter=f"connector{connector_id}")
    await async_wait_until(present, what=f"meter of connector {connector_id}")


async def sim(bus: Bus, **action) -> None:
    reply = await bus.request(contract.SIM, SimAction(**action))
    assert reply.accepted, reply


async def connector(bus: Bus, connector_id: int, status: ConnectorStatus,
                    timeout_s: float = 15.0) -> ConnectorState:
    async def reached():
        state = await bus.get(contract.CONNECTOR, connector_id=connector_id)
        return state if state is not None and state.status is status else None
    return await async_wait_until(reached, timeout_s=timeout_s, what=f"connector {connector_id} {status}")


async def charge_remotely(bus: Bus, connector_id: int) -> None:
    """Plug an EV, start it as RemoteStartTransaction would (pre-authorized), see it charge."""
    await sim(bus, action="plug", connector_id=connector_id)
    await connector(bus, connector_id, ConnectorStatus.PREPARING)
    await meter_ready(bus, connector_id)
    reply = await bus.request(contract.START, StartRequest(connector_id=connector_id, id_tag="REMOTE1",
                                                           source=StartSource.REMOTE, authorized=True))
    assert reply.accepted, reply
    await connector(bus, connector_id, ConnectorStatus.CHARGING)


async def test_a_card_starts_charging_and_the_same_card_stops_at_the_final_meter_reading(
        bus: Bus, ocpp: FakeOcpp, sim_station: SimStation, services: Path) -> None:
    await connector(bus, 1, ConnectorStatus.AVAILABLE)
    await sim(bus, action="plug", connector_id=1, soc=20)
    await connector(bus, 1, ConnectorStatus.PREPARING)
    await sim(bus, action="swipe", uid=CARD)

    started = await ocpp.event(SessionStarted)
    assert (started.connector_id, started.id_tag) == (1, CARD)
    charging = await connector(bus, 1, ConnectorStatus.CHARGING)
    assert charging.session_id == started.session_id
    assert (await read_connector_hardware(sim_station.files.config, 1)).contactor_closed

    async def drawing_past_the_readers_repeat_window():
        state = await bus.get(contract.CONNECTOR, connector_id=1)
        age_s = (utcnow() - state.session_started_at).total_seconds()
        return state.session_energy_wh > 0 and state.power_w > 0 and age_s > REPEAT_WINDOW_S + 1
    await async_wait_until(drawing_past_the_readers_repeat_window, what="energy flowing")

    await sim(bus, action="swipe", uid=CARD)
    stopped = await ocpp.event(SessionStopped)
    assert (stopped.reason, stopped.id_tag) == (StopReason.LOCAL, CARD)
    assert stopped.session_id == started.session_id
    hardware = await read_connector_hardware(sim_station.files.config, 1)
    assert not hardware.contactor_closed
    assert stopped.meter_stop_wh == hardware.meter_energy_wh > started.meter_start_wh
    await connector(bus, 1, ConnectorStatus.FINISHING)

    [row] = query(services, "SELECT * FROM station_chargingsession")
    assert row["stop_reason"] == "Local"
    assert row["energy_wh"] == pytest.approx(stopped.meter_stop_wh - started.meter_start_wh)
    assert row["peak_power_w"] > 0


async def test_a_rejected_card_starts_nothing(bus: Bus, ocpp: FakeOcpp, sim_station: SimStation) -> None:
    await sim(bus, action="plug", connector_id=2)
    await connector(bus, 2, ConnectorStatus.PREPARING)
    last_id, _ = await bus.tail(contract.AUTH_RESULTS, "0", block_ms=1)
    await sim(bus, action="swipe", uid=REJECTED)

    async def result():
        _, deliveries = await bus.tail(contract.AUTH_RESULTS, last_id, block_ms=100)
        return deliveries[0].message if deliveries else None
    answer = await async_wait_until(result, what="the authorization result")
    assert (answer.connector_id, answer.status) == (2, AuthorizationStatus.INVALID)
    assert (await bus.get(contract.CONNECTOR, connector_id=2)).status is ConnectorStatus.PREPARING
    assert not ocpp.events


async def test_estop_opens_the_contactor_and_ends_the_session_as_emergency_stop(
        bus: Bus, ocpp: FakeOcpp, sim_station: SimStation) -> None:
    await charge_remotely(bus, 2)

    await sim(bus, action="estop", pressed=True)
    faulted = await connector(bus, 2, ConnectorStatus.FAULTED, timeout_s=2)
    assert faulted.info == "estop"
    assert not (await read_connector_hardware(sim_station.files.config, 2)).contactor_closed
    stopped = await ocpp.event(SessionStopped)
    assert stopped.reason is StopReason.EMERGENCY_STOP
    refused = await bus.request(contract.START, StartRequest(connector_id=1, source=StartSource.HMI))
    assert (refused.accepted, refused.reason) == (False, "estop")

    await sim(bus, action="estop", pressed=False)
    await connector(bus, 2, ConnectorStatus.FINISHING)


async def test_unplugging_ends_the_session_as_ev_disconnected(
        bus: Bus, ocpp: FakeOcpp, sim_station: SimStation) -> None:
    await charge_remotely(bus, 1)
    await sim(bus, action="unplug", connector_id=1)
    stopped = await ocpp.event(SessionStopped)
    assert stopped.reason is StopReason.EV_DISCONNECTED
    await connector(bus, 1, ConnectorStatus.AVAILABLE)


async def test_losing_the_io_module_ends_the_session_and_faults_every_connector(
        bus: Bus, ocpp: FakeOcpp, sim_station: SimStation) -> None:
    await charge_remotely(bus, 1)

    assert sim_station.process.stop() == 0  # every simulated device goes silent at once
    stopped = await ocpp.event(SessionStopped)
    assert stopped.reason is StopReason.OTHER
    for connector_id in (1, 2):
        faulted = await connector(bus, connector_id, ConnectorStatus.FAULTED)
        assert faulted.info == "io_offline"
    assert (await bus.get(contract.STATION)).io_online is False


async def test_nothing_starts_while_the_estop_is_pressed(
        bus: Bus, ocpp: FakeOcpp, sim_station: SimStation) -> None:
    await sim(bus, action="estop", pressed=True)
    await connector(bus, 1, ConnectorStatus.FAULTED)
    await sim(bus, action="plug", connector_id=1)
    await meter_ready(bus, 1)
    last_id, _ = await bus.tail(contract.AUTH_RESULTS, "0", block_ms=1)
    await sim(bus, action="swipe", uid=CARD)

    async def answered():
        _, deliveries = await bus.tail(contract.AUTH_RESULTS, last_id, block_ms=100)
        return deliveries
    await async_wait_until(answered, what="the card to be handled")
    refused = await bus.request(contract.START, StartRequest(connector_id=1, id_tag="REMOTE1",
                                                             source=StartSource.REMOTE, authorized=True))
    assert (refused.accepted, refused.reason) == (False, "estop")
    assert not (await read_connector_hardware(sim_station.files.config, 1)).contactor_closed
    assert not ocpp.events
