"""A stop lets the persisted messages out first (workers/ocpp16/service.py `_stop_when_drained`):
a status queued right before the station stops, such as Installing right before it exits for an
update, reaches the CSMS before the restart. A CSMS that is not there does not hold the stop up."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from bus import contract
from tests.support.station import BusReader
from tests.support.waiting import async_wait_until
from webapp.station.models import OutboxMessage
from workers.ocpp16.service import STOP_DRAIN_S
from workers.sim.csms import Csms

INSTALLING = {"status": "Installing"}


def _queue_installing(service_db: Path) -> None:
    """Write the row as ocpp16's firmware feature does (Notices.queue_persisted), from outside."""
    with sqlite3.connect(service_db) as connection:
        connection.execute(
            "INSERT INTO station_outboxmessage (lane, action, payload, session_id, state, attempts, "
            "created_at) VALUES (?, ?, ?, '', ?, 0, datetime('now'))",
            (OutboxMessage.Lane.OTHER, "FirmwareStatusNotification", '{"status": "Installing"}',
             OutboxMessage.State.PENDING))


async def test_a_status_queued_just_before_a_stop_reaches_the_csms_before_ocpp16_exits(
        csms: Csms, start_ocpp16, service_db: Path) -> None:
    process = start_ocpp16(csms.url)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)

    _queue_installing(service_db)
    code = await asyncio.to_thread(process.stop)

    assert code == 0
    assert [c.payload for c in csms.calls("FirmwareStatusNotification")] == [INSTALLING]


async def test_without_a_csms_the_stop_does_not_wait_for_the_queue(start_ocpp16, service_db: Path) -> None:
    process = start_ocpp16("ws://127.0.0.1:1/ocpp")  # nothing listens
    reader = BusReader()
    try:
        async def linked() -> bool:
            return reader.get(contract.OCPP_LINK) is not None
        await async_wait_until(linked, timeout_s=20, what="ocpp16 running")
    finally:
        reader.close()
    _queue_installing(service_db)
    began = time.monotonic()
    code = await asyncio.to_thread(process.stop)
    assert code == 0
    assert time.monotonic() - began < STOP_DRAIN_S  # offline: the row simply stays queued
