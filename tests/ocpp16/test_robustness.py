"""Bad frames, refused handshakes, CALLERRORs and bad input neither stop ocpp16 nor lose data."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from bus import Bus, contract
from bus.enums import AuthorizationStatus, StopReason
from bus.messages import AuthorizeRequest, SessionStarted, SessionStopped
from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.waiting import async_wait_until
from webapp.env import REPO_ROOT
from workers.sim.csms import Csms


async def _online(csms: Csms, start_ocpp16, **env: str):
    process = start_ocpp16(csms.url, **env)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)
    return process


async def test_malformed_frames_from_the_csms_do_not_stop_the_service(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    ocpp16 = await _online(csms, start_ocpp16)
    for frame in ["this is not json", '{"an": "object"}', "[]", '[2, "raw-0", ["not", "a", "name"], {}]',
                  '[3, "nobody-asked", {}]', '[9, "raw-x"]',
                  '[2, "raw-1", "FooBar", {}]',  # not an OCPP 1.6 action
                  '[2, "raw-2", "Reset", {"type": "Hard"}]',  # an action we do not support yet
                  '[2, "raw-3", "RemoteStartTransaction", {"idTag": 42}]']:  # breaks the schema
        await csms.send_raw(CHARGE_POINT_ID, frame)

    async def three_answers() -> bool:
        return len(csms.raw_replies) >= 3

    await async_wait_until(three_answers, what="CALLERRORs for the bad CALLs")
    assert [(r[0], r[1], r[2]) for r in csms.raw_replies] == [
        (4, "raw-1", "NotImplemented"), (4, "raw-2", "NotSupported"), (4, "raw-3", "TypeConstraintViolation")]
    reply = await bus.request(contract.AUTHORIZE, AuthorizeRequest(id_tag="STILL0K"))
    assert reply.status == AuthorizationStatus.ACCEPTED  # the link still works both ways
    assert ocpp16.running and csms.is_connected(CHARGE_POINT_ID)


async def test_unknown_charge_point_404_is_retried_until_the_csms_knows_it(
        csms: Csms, start_ocpp16) -> None:
    csms.behaviour.known_charge_points = {"SOMEONE-ELSE"}
    start_ocpp16(csms.url)

    async def refused_twice() -> bool:
        return csms.handshake_rejections >= 2

    await async_wait_until(refused_twice, what="two refused handshakes")
    csms.behaviour.known_charge_points = {CHARGE_POINT_ID}
    await csms.wait_for_call("BootNotification", timeout_s=10)


async def test_a_call_waiting_when_the_connection_drops_fails_at_once(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    await _online(csms, start_ocpp16, OCPP_MESSAGE_TIMEOUT="60")
    csms.behaviour.unanswered = {"Authorize": 1}
    loop = asyncio.get_running_loop()
    pending = asyncio.create_task(bus.request(contract.AUTHORIZE, AuthorizeRequest(id_tag="LOST1")))
    await csms.wait_for_call("Authorize", answered=False)

    dropped_at = loop.time()
    await csms.stop()
    reply = await pending
    assert reply.status == AuthorizationStatus.INVALID
    assert loop.time() - dropped_at < 3, "the call waited for its timeout instead of failing at once"


async def test_callerror_and_timeout_are_retried_and_a_start_given_up_leaves_transaction_id_minus_1(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    await _online(csms, start_ocpp16, OCPP_METER_VALUE_SAMPLE_INTERVAL="0", OCPP_MESSAGE_TIMEOUT="1")
    csms.behaviour.failures = {"StartTransaction": 2}
    await _session(bus, "ok-after-retries", "CARD1")
    stop = await csms.wait_for_call("StopTransaction")
    attempts = csms.calls("StartTransaction")
    assert [a.error_code for a in attempts] == ["InternalError", "InternalError", None]
    assert len({a.unique_id for a in attempts}) == 3  # a new message id per attempt
    assert stop.payload["transactionId"] == 1

    csms.behaviour.failures = {"StartTransaction": 3}  # = TransactionMessageAttempts: given up
    await _session(bus, "never-started", "CARD2")
    stop = await csms.wait_for_call("StopTransaction", count=2)
    assert [a.error_code for a in csms.calls("StartTransaction")[3:]] == ["InternalError"] * 3
    assert stop.payload["transactionId"] == -1 and stop.error_code is None  # errata 3.18

    csms.behaviour.unanswered = {"StopTransaction": 1}  # the answer is lost: timeout, then again
    await _session(bus, "lost-answer", "CARD4")
    await csms.wait_for_call("StopTransaction", count=3)
    lost, again = csms.calls("StopTransaction")[2:]
    assert lost.payload == again.payload and lost.unique_id != again.unique_id
    assert (lost.answered, again.answered) == (False, True)


async def test_session_with_an_invalid_id_tag_is_kept_as_failed_and_does_not_block_the_queue(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    ocpp16 = await _online(csms, start_ocpp16, OCPP_METER_VALUE_SAMPLE_INTERVAL="0")
    await _session(bus, "too-long", "X" * 21)  # idTag is CiString20
    await _session(bus, "fine", "CARD3")
    await csms.wait_for_call("StopTransaction")
    assert [c.payload["idTag"] for c in csms.calls("StartTransaction")] == ["CARD3"]

    with sqlite3.connect(service_db) as db:
        rows = db.execute("SELECT action, state, response FROM station_outboxmessage "
                          "WHERE session_id = 'too-long' ORDER BY id").fetchall()
    assert [(action, state) for action, state, _ in rows] == [("StartTransaction", "failed"),
                                                               ("StopTransaction", "failed")]
    assert "idTag" in rows[0][2]
    assert "StartTransaction of session too-long cannot be sent" in ocpp16.log()


def test_a_bad_setting_stops_start_up_with_a_message_naming_it(tmp_path: Path, service_db: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{service_db}",
           "STATION_DATA_DIR": str(tmp_path / "data"), "OCPP_METER_VALUE_SAMPLE_INTERVAL": "often"}
    result = subprocess.run([sys.executable, "-m", "workers.ocpp16"], cwd=REPO_ROOT, env=env,
                            capture_output=True, timeout=60)
    assert result.returncode == 2  # configuration error: chargepoint does not restart it in a loop
    assert b"OCPP_METER_VALUE_SAMPLE_INTERVAL must be a number, got 'often'" in result.stderr


async def _session(bus: Bus, session_id: str, id_tag: str) -> None:
    await bus.publish(contract.SESSIONS, SessionStarted(session_id=session_id, connector_id=1, id_tag=id_tag,
                                                        meter_start_wh=100))
    await bus.publish(contract.SESSIONS, SessionStopped(session_id=session_id, connector_id=1, id_tag=id_tag,
                                                        meter_stop_wh=200, reason=StopReason.LOCAL))
