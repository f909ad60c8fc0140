"""smartw's start-up recovery: session events a crash left unsent go out again, and sessions
left open by a crash or power cut are closed (PowerLoss) at the meter's register."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bus import Bus, contract
from bus.enums import StopReason
from bus.messages import SessionStarted, SessionStopped
from tests.sim.processes import ServiceProcess, SimStation
from tests.support.database import query, sqlite_url
from tests.support.waiting import async_wait_until

COLUMNS = ("session_id, connector_id, standard, id_tag, started_at, stopped_at, meter_start_wh, "
           "meter_stop_wh, energy_wh, peak_power_w, stop_reason, stop_id_tag, start_published, "
           "stop_published, reservation_id, parent_id_tag")


def insert_session(db: Path, *values: object) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute(f"INSERT INTO station_chargingsession ({COLUMNS}) VALUES "
                           f"({', '.join('?' * len(values))})", values)


async def test_unsent_events_are_published_again_and_open_sessions_closed(
        bus: Bus, sim_station: SimStation, service_db: Path, tmp_path: Path) -> None:
    insert_session(service_db, "done-but-unsent", 1, "CCS", "CARD1", "2026-01-01 10:00:00",
                   "2026-01-01 10:30:00", 1000.0, 5000.0, 4000.0, 50_000.0, "Local", "CARD1", True, False,
                   None, "")
    insert_session(service_db, "open-and-unsent", 2, "Type2", "CARD2", "2026-01-01 11:00:00",
                   None, 2000.0, None, 0.0, 0.0, "", "", False, False, 5, "GROUP2")
    env = {**sim_station.env, "DATABASE_URL": sqlite_url(service_db)}
    children = [ServiceProcess(module, env, tmp_path / f"{module}.log")
                for module in ("workers.counters", "workers.smartw")]
    try:
        events: list[SessionStarted | SessionStopped] = []

        async def three_events() -> bool:
            async for delivery in bus.consume(contract.SESSIONS, "test", "test", block_ms=100):
                if delivery is None:
                    return len(events) >= 3
                events.append(delivery.message)
                await delivery.ack()
            return False
        await async_wait_until(three_events, timeout_s=20, what="the recovered session events")
    finally:
        for child in reversed(children):
            assert child.stop() == 0, child.output()

    stopped = {e.session_id: e for e in events if isinstance(e, SessionStopped)}
    started = [(e.session_id, e.reservation_id) for e in events if isinstance(e, SessionStarted)]
    assert started == [("open-and-unsent", 5)]  # the row keeps the reservation it used
    done = stopped["done-but-unsent"]
    assert (done.reason, done.id_tag, done.meter_stop_wh) == (StopReason.LOCAL, "CARD1", 5000.0)
    closed = stopped["open-and-unsent"]
    assert closed.reason is StopReason.POWER_LOSS and closed.meter_stop_wh >= 2000.0
    rows = {row["session_id"]: row for row in query(service_db, "SELECT * FROM station_chargingsession")}
    assert all(row["start_published"] and row["stop_published"] for row in rows.values())
    assert rows["open-and-unsent"]["stop_reason"] == "PowerLoss"
