"""A real session's timeline, written by smartw as a real process against the simulator: the
start, the statuses, the power offered, the EV's phases, a controller fault and the stop."""

from __future__ import annotations

from pathlib import Path

from bus import Bus, contract
from bus.enums import ConnectorStatus, StopReason
from bus.messages import SessionStarted, SessionStopped
from tests.sim.processes import SimStation
from tests.smartw.test_service import FakeOcpp, charge_remotely, connector, ocpp, services, sim  # noqa: F401
from tests.support.database import query
from tests.support.waiting import async_wait_until


async def test_a_session_faulted_by_its_controller_leaves_a_timeline_from_start_to_stop(
        bus: Bus, ocpp: FakeOcpp, sim_station: SimStation, services: Path) -> None:  # noqa: F811
    await charge_remotely(bus, 1)
    started = await ocpp.event(SessionStarted)

    async def energy_flowing() -> bool:
        state = await bus.get(contract.CONNECTOR, connector_id=1)
        return state.power_w > 0 and state.session_energy_wh > 0
    await async_wait_until(energy_flowing, what="energy flowing")
    await sim(bus, action="fault", device="controller1", kind="insulation")
    await connector(bus, 1, ConnectorStatus.FAULTED)
    stopped = await ocpp.event(SessionStopped)
    assert stopped.reason is StopReason.OTHER

    async def timeline_closed() -> list:
        events = query(services, "SELECT e.kind, e.detail, e.data FROM station_sessionevent e "
                       "JOIN station_chargingsession s ON s.id = e.session_id "
                       "WHERE s.session_id = ? ORDER BY e.at, e.id", started.session_id)
        return events if events and events[-1]["kind"] == "stopped" else []
    events = await async_wait_until(timeline_closed, what="the session's stopped entry")

    kinds = [event["kind"] for event in events]
    details = [event["detail"] for event in events]
    assert kinds[0] == "started" and kinds.count("started") == 1 and kinds.count("stopped") == 1
    assert "REMOTE1" in details[0]
    assert "Charging (charging)" in details
    assert "Faulted (insulation)" in details  # the controller's insulation flag (smartw/faults.py)
    assert any(kind == "limit" for kind in kinds)
    assert any(event["kind"] == "ev" and "phase charging" in event["detail"] for event in events)
    assert any(detail.startswith("raised: GroundFailure (insulation)") for detail in details)
    assert details[-1].startswith("Other, ")
    [row] = query(services, "SELECT energy_wh FROM station_chargingsession")
    assert details[-1] == f"Other, {row['energy_wh']:.0f} Wh" and row["energy_wh"] > 0
