"""The frame log (table OcppFrame): every frame in and out, answers named after the CALL they
answer, the AuthorizationKey masked, long frames cut, bounded in memory and on disk."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path

import pytest
from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.waiting import async_wait_until
from webapp.station.ocpp_models import OcppFrame
from workers.ocpp16.frame_log import CUT_MARKER, MAX_LOGGED_CHARS, PRUNE_EVERY_ROWS, FrameLog
from workers.ocpp16.txqueue import db
from workers.sim.csms import Csms

# The hex of "OCA_OCTT_admin_test", the password OCTT TC_073_CS sets.
SECRET_KEY = "4f43415f4f4354545f61646d696e5f74657374"
IN, OUT = OcppFrame.Direction.IN, OcppFrame.Direction.OUT


def _rows() -> list[OcppFrame]:
    return list(OcppFrame.objects.order_by("id"))


@pytest.mark.django_db(transaction=True)
async def test_frames_are_logged_with_the_action_answered_and_the_authorization_key_masked() -> None:
    frame_log = FrameLog()
    writing = asyncio.create_task(frame_log.run())
    await asyncio.sleep(0)  # running, as in the service
    long_frame = json.dumps([2, "d1", "DataTransfer", {"vendorId": "v", "data": "z" * 30_000}])
    exchange = [
        (OUT, '[2,"h1","Heartbeat",{}]'), (IN, '[3,"h1",{"currentTime":"2024-01-01T00:00:00.000Z"}]'),
        (IN, json.dumps([2, "k1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": SECRET_KEY}])),
        (OUT, '[3,"k1",{"status":"Accepted"}]'),
        (IN, '[2,"k2","ChangeConfiguration",{"key":"HeartbeatInterval","value":"60"}]'),
        (OUT, '[4,"k2","NotSupported","",{}]'),
        (IN, "not json"), (IN, '[3,"stray",{}]'), (IN, long_frame), (OUT, '[4,"d1","NotSupported","",{}]'),
        (IN, '[2,"k3","ChangeConfiguration",{"key":"AuthorizationKey","value":"' + SECRET_KEY)]  # cut off
    for direction, frame in exchange:
        frame_log.record(direction, frame)
    writing.cancel()  # stopping writes what is buffered
    await asyncio.gather(writing, return_exceptions=True)

    rows = await db(_rows)
    assert [(r.direction, r.message_type, r.unique_id, r.action) for r in rows] == [
        (OUT, 2, "h1", "Heartbeat"), (IN, 3, "h1", "Heartbeat"),
        (IN, 2, "k1", "ChangeConfiguration"), (OUT, 3, "k1", "ChangeConfiguration"),
        (IN, 2, "k2", "ChangeConfiguration"), (OUT, 4, "k2", "ChangeConfiguration"),
        (IN, None, "", ""), (IN, 3, "stray", ""),
        (IN, 2, "d1", "DataTransfer"), (OUT, 4, "d1", "DataTransfer"), (IN, 2, "k3", "ChangeConfiguration")]
    assert all(SECRET_KEY not in r.frame for r in rows)
    assert json.loads(rows[2].frame)[3] == {"key": "AuthorizationKey", "value": "***"}
    assert rows[4].frame == exchange[4][1] and rows[6].frame == "not json"  # others as they were
    assert rows[8].frame == long_frame[:MAX_LOGGED_CHARS] + CUT_MARKER.format(length=len(long_frame))
    assert frame_log.written == len(exchange) and frame_log.dropped == 0


@pytest.mark.django_db(transaction=True)
async def test_a_key_written_with_json_escapes_is_masked_in_the_frame_log_too() -> None:
    """The mask is decided on the parsed JSON (wsconnect.redact_frame), so `Authorization\\u004bey`
    or an escaped action name do not slip the AuthorizationKey into table OcppFrame."""
    frame_log = FrameLog()
    frame_log.record(IN, '[2,"e1","ChangeConfiguration",{"key":"Authorization\\u004bey","value":"'
                     + SECRET_KEY + '"}]')
    frame_log.record(IN, '[2,"e2","Change\\u0043onfiguration",{"key":"AUTHORIZATIONKEY","value":"'
                     + SECRET_KEY + '"}]')
    await frame_log.flush()
    rows = await db(_rows)
    assert [(r.unique_id, r.action) for r in rows] == [("e1", "ChangeConfiguration"),
                                                      ("e2", "ChangeConfiguration")]
    assert [json.loads(r.frame)[3]["value"] for r in rows] == ["***", "***"]
    assert all(SECRET_KEY not in r.frame for r in rows)


@pytest.mark.django_db(transaction=True)
async def test_a_full_buffer_drops_the_oldest_frames_and_counts_them() -> None:
    """The database falling behind never holds up OCPP: record() only appends."""
    frame_log = FrameLog(buffer_rows=10)
    for number in range(25):
        frame_log.record(OUT, f'[2,"m{number}","Heartbeat",{{}}]')
    assert frame_log.dropped == 15
    await frame_log.flush()
    assert [row.unique_id for row in await db(_rows)] == [f"m{number}" for number in range(15, 25)]


@pytest.mark.django_db(transaction=True)
async def test_only_the_newest_rows_are_kept() -> None:
    frame_log = FrameLog(keep_rows=50)
    for number in range(PRUNE_EVERY_ROWS):
        frame_log.record(IN, f'[3,"r{number}",{{}}]')
    await frame_log.flush()
    assert [row.unique_id for row in await db(_rows)] == [f"r{n}" for n in range(PRUNE_EVERY_ROWS - 50,
                                                                                    PRUNE_EVERY_ROWS)]


async def test_the_running_service_logs_every_frame_with_the_csms(
        csms: Csms, start_ocpp16, service_db: Path) -> None:
    """Both directions, each answer named after its CALL; ChangeConfiguration(AuthorizationKey)
    as OCTT TC_073_CS sends it is stored masked (and never reaches the service's log)."""
    ocpp16 = start_ocpp16(csms.url)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)
    with contextlib.suppress(OCPPError):  # whatever the answer: the frames are what matters here
        await csms.send(CHARGE_POINT_ID, call.ChangeConfiguration(key="AuthorizationKey", value=SECRET_KEY))

    def logged() -> list[tuple[str, int | None, str, str]]:
        with sqlite3.connect(service_db) as database:
            return database.execute("SELECT direction, message_type, action, frame FROM station_ocppframe "
                                    "ORDER BY id").fetchall()

    async def key_change_answered() -> bool:
        return any(row[0] == "out" and row[2] == "ChangeConfiguration" for row in logged())

    await async_wait_until(key_change_answered, what="the ChangeConfiguration answer in the frame log")
    rows = logged()
    kinds = [row[:3] for row in rows]
    assert kinds[:2] == [("out", 2, "BootNotification"), ("in", 3, "BootNotification")]
    assert ("out", 2, "StatusNotification") in kinds and ("in", 3, "StatusNotification") in kinds
    key_change = next(row[3] for row in rows if row[:3] == ("in", 2, "ChangeConfiguration"))
    assert json.loads(key_change)[3] == {"key": "AuthorizationKey", "value": "***"}
    assert not any(SECRET_KEY in row[3] for row in rows) and SECRET_KEY not in ocpp16.log()
