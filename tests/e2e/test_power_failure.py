"""A power cut during a transaction (OCTT module 14, power failure).

Every process of the station dies at once (SIGKILL: no clean-up, no StopTransaction on the way
down) and the bus loses its memory (Redis flushed), then the station starts again on the same
database. smartw finds the session left open and closes it with reason PowerLoss
(workers/smartw/service.py, `_close_orphan_sessions`), ocpp16 sends its StopTransaction after the
new BootNotification, exactly once, and the connector set Inoperative comes back Unavailable.

TC_032_1 (transactions stopped before going down) needs a back-up power source and a mains-fail
signal; this station has neither, so TC_032_2 (stopped after going down) is the case that applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest
import redis
from ocpp.v16 import call

from bus import contract
from tests.e2e.conftest import CHARGE_POINT_ID, METER_VALUE_SAMPLE_INTERVAL_S
from tests.e2e.helpers import session_row, sim, status_notification
from tests.support.database import query, sqlite_url
from tests.support.station import Station, launch_station
from tests.support.waiting import async_wait_until
from webapp.station.models import OutboxMessage
from workers.sim.csms import Csms, ReceivedCall

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CHARGING = 2
INOPERATIVE = 1


def power_cut(station: Station, redis_client: redis.Redis) -> None:
    """Kill every process of the station at once, as a power cut does (a service's children too,
    e.g. RQ's scheduler, which would otherwise take later tests' jobs). chargepoint is frozen
    first, so it neither starts a replacement nor passes its own death on as a SIGTERM
    (child.py: the parent-death signal) before its children are gone."""
    os.kill(station.pid, signal.SIGSTOP)
    for pid in station.pids().values():
        if pid is not None:  # each service leads its own process group: its children die with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    os.kill(station.pid, signal.SIGKILL)
    station.process.wait(timeout=10)
    station.kill_leftovers()
    redis_client.flushall()  # Redis keeps nothing over a power cut (ARCHITECTURE: the bus)


async def test_power_cut_during_a_transaction_ends_it_with_power_loss_once_and_keeps_unavailable(
        csms: Csms, start_station, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """TC_032_2 (PowerLoss after going down, exactly one StopTransaction) and TC_034
    (Unavailable kept over a power failure)."""
    database = tmp_path / "station.sqlite3"
    monkeypatch.setenv("OCPP_METER_VALUE_SAMPLE_INTERVAL", METER_VALUE_SAMPLE_INTERVAL_S)
    monkeypatch.setenv("DATABASE_URL", sqlite_url(database))
    folder = tmp_path / "before-the-cut"
    folder.mkdir()
    first = await asyncio.to_thread(launch_station, folder, csms.url, charge_point_id=CHARGE_POINT_ID)
    try:
        start = await _charging_with_one_connector_inoperative(csms, first)
        power_cut(first, redis_client)
    finally:
        first.kill_leftovers()
    assert not csms.calls("StopTransaction"), "nothing could be sent on the way down"

    second: Station = await asyncio.to_thread(start_station, csms.url, charge_point_id=CHARGE_POINT_ID)

    boot = await csms.wait_for_call("BootNotification", count=2, timeout_s=60)
    stop = await csms.wait_for_call("StopTransaction", timeout_s=60)
    assert stop.payload["reason"] == "PowerLoss"
    assert stop.payload["transactionId"] == start.response["transactionId"]
    assert stop.payload["meterStop"] >= start.payload["meterStart"]
    assert stop.at > boot.at, "nothing is sent before the new BootNotification is accepted"
    assert session_row(second, start.payload["meterStart"])["stop_reason"] == "PowerLoss"
    await async_wait_until(lambda: _queue_empty(second), timeout_s=30, what="every queued message delivered")
    assert len(csms.calls("StopTransaction")) == 1
    assert _stop_transactions_queued(database) == 1, "the session was stopped once, not twice"
    await async_wait_until(lambda: _reported_after(csms, boot, INOPERATIVE), timeout_s=20,
                           what="connector 1's status after the power came back")
    assert {c.payload["status"] for c in csms.calls("StatusNotification")
            if c.at > boot.at and c.payload["connectorId"] == INOPERATIVE} == {"Unavailable"}


async def _charging_with_one_connector_inoperative(csms: Csms, station: Station) -> ReceivedCall:
    await csms.wait_for_call("BootNotification", timeout_s=30)
    await status_notification(csms, INOPERATIVE, "Available")  # smartw serves its commands
    result = await csms.send(CHARGE_POINT_ID, call.ChangeAvailability(connector_id=INOPERATIVE,
                                                                      type="Inoperative"))
    assert result.status == "Accepted"
    await status_notification(csms, INOPERATIVE, "Unavailable")
    await sim(station, "plug", str(CHARGING), "--soc", "30")
    await status_notification(csms, CHARGING, "Preparing")
    assert await csms.remote_start(CHARGE_POINT_ID, "POWER-CUT", connector_id=CHARGING) == "Accepted"
    start = await csms.wait_for_call("StartTransaction", timeout_s=20)
    await status_notification(csms, CHARGING, "Charging")

    async def recorded() -> bool:  # the answer is in the database, so the cut cannot make it resend
        running = station.bus.get(contract.OCPP_TRANSACTION, connector_id=CHARGING)
        return running is not None and running.transaction_id == start.response["transactionId"]

    await async_wait_until(recorded, timeout_s=20, what="StartTransaction's answer recorded by ocpp16")
    return start


async def _queue_empty(station: Station) -> bool:
    link = station.bus.get(contract.OCPP_LINK)
    return link is not None and link.registration == "Accepted" and link.queued_messages == 0


def _stop_transactions_queued(database: Path) -> int:
    rows = query(database, f"SELECT COUNT(*) AS n FROM {OutboxMessage._meta.db_table} "
                           "WHERE action = 'StopTransaction'")
    return int(rows[0]["n"])


async def _reported_after(csms: Csms, boot: ReceivedCall, connector_id: int) -> bool:
    return any(c.at > boot.at and c.payload["connectorId"] == connector_id
               for c in csms.calls("StatusNotification"))
