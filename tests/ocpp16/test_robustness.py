"""Bad frames, refused handshakes, CALLERRORs and bad input neither stop ocpp16 nor lose data.

Protocol-level cases run a real CsmsConnection on a websocket pair in the test (wire_pair.py);
the others run `python -m workers.ocpp16` against the test CSMS."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import Action

from bus import Bus, contract
from bus.enums import AuthorizationStatus, StopReason
from bus.messages import AuthorizeRequest, SessionStarted, SessionStopped
from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.ocpp16.wire_pair import WirePair, wire_pair
from tests.support.waiting import async_wait_until
from webapp.env import REPO_ROOT
from workers.ocpp16.error_codes import in_1_6_spelling
from workers.ocpp16.protocol import CallFailure, CsmsCallError
from workers.ocpp16.wsconnect import MAX_FRAME_BYTES
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
                  '[2, "raw-2", "BootNotification", {}]',  # an action only a charge point sends
                  '[2, "raw-3", "RemoteStartTransaction", {"idTag": 42}]',  # breaks the schema
                  '[2, "raw-4", "RemoteStopTransaction", {}]',  # a required field missing
                  '[2, "raw-5", "RemoteStopTransaction", {"transactionId": 1, "spare": 0}]']:  # extra one
        await csms.send_raw(CHARGE_POINT_ID, frame)

    async def all_answers() -> bool:
        return len(csms.raw_replies) >= 6

    await async_wait_until(all_answers, what="CALLERRORs for the bad CALLs")
    assert [(r[0], r[1], r[2]) for r in csms.raw_replies] == [
        (4, "raw-0", "FormationViolation"), (4, "raw-1", "NotImplemented"), (4, "raw-2", "NotSupported"),
        (4, "raw-3", "TypeConstraintViolation"), (4, "raw-4", "OccurenceConstraintViolation"),
        (4, "raw-5", "FormationViolation")]
    reply = await bus.request(contract.AUTHORIZE, AuthorizeRequest(id_tag="STILL0K"))
    assert reply.status == AuthorizationStatus.ACCEPTED  # the link still works both ways
    assert ocpp16.running and csms.is_connected(CHARGE_POINT_ID)


def _start_with_profile(unique_id: str, purpose: str = "TxProfile", limit: float = 16.0) -> str:
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
    profile = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": purpose,
               "chargingProfileKind": "Absolute", "chargingSchedule": schedule}
    return json.dumps([2, unique_id, "RemoteStartTransaction", {"idTag": "A", "chargingProfile": profile}])


# (frame the CSMS sends, what the charge point must answer: a CALLERROR code or "CALLRESULT")
BAD_CALLS = [
    ('[2, "c1", "FooBar", {}]', "NotImplemented"),  # not an OCPP 1.6 action (OCPP-J Table 7)
    ('[2, "c2", "StartTransaction", {}]', "NotSupported"),  # known, but only a charge point sends it
    ('[2, "c3", "RemoteStopTransaction", {}]', "OccurenceConstraintViolation"),  # required field missing
    ('[2, "c4", "RemoteStopTransaction", null]', "OccurenceConstraintViolation"),  # null = {} (OCPP-J §4.1)
    ('[2, "c5", "RemoteStopTransaction", {"transactionId": "7"}]', "TypeConstraintViolation"),
    ('[2, "c6", "RemoteStartTransaction", {"idTag": "ABCDEFGHIJKLMNOPQRSTU"}]',  # CiString20
     "TypeConstraintViolation"),
    ('[2, "c7", "RemoteStopTransaction", {"transactionId": 7, "why": "x"}]', "FormationViolation"),
    (_start_with_profile("c8", purpose="Sometimes"), "PropertyConstraintViolation"),  # not in the enum
    (_start_with_profile("c9", limit=6.25), "PropertyConstraintViolation"),  # limits are multiples of 0.1
    (_start_with_profile("c10", limit=21.4), "CALLRESULT"),  # it is one, read as a decimal (not a float)
    ('[2, "c11", "RemoteStopTransaction"]', "FormationViolation"),  # a CALL has four elements
    ('[2, "c12", 17, {}]', "FormationViolation"),
    ('[2, "c13", "RemoteStopTransaction", {"transactionId": 7}, "spare"]', "FormationViolation"),
    (json.dumps([2, "L" * 5000, "RemoteStopTransaction", {"transactionId": 7}]), "CALLRESULT"),  # echoed
]


@pytest.mark.django_db(transaction=True)
async def test_each_bad_call_is_answered_with_its_ocpp_j_1_6_code(bus: Bus) -> None:
    """OCPP-J Table 7 codes in 1.6 spelling (FormationViolation, OccurenceConstraintViolation);
    NotSupported for a known action without handler (OCTT TC_042_1/TC_043_1 style), not the
    library's swapped NotImplemented; schema errors by the keyword that failed."""
    async with wire_pair(bus) as pair:
        for frame, expected in BAD_CALLS:
            await pair.send(frame)
            answer = await pair.next_frame()
            assert answer[1] == json.loads(frame)[1], frame
            assert (answer[2] if answer[0] == 4 else "CALLRESULT") == expected, (frame, answer)
            assert answer[0] == 3 or (isinstance(answer[3], str) and isinstance(answer[4], dict))
        assert pair.up


SENT_BY_CHARGE_POINTS = frozenset({  # OCPP 1.6 §1.2 directory and Security Whitepaper §3.3 (CP -> CS)
    "Authorize", "BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
    "Heartbeat", "MeterValues", "StartTransaction", "StatusNotification", "StopTransaction",
    "SecurityEventNotification", "SignCertificate", "LogStatusNotification",
    "SignedFirmwareStatusNotification"})


@pytest.mark.django_db(transaction=True)
async def test_every_1_6_and_whitepaper_action_is_handled_or_answered_not_supported(bus: Bus) -> None:
    """No OCPP 1.6 action (whitepaper ones included) is ever answered NotImplemented, which
    means "unknown action"; one a CSMS may not send, or one without a handler, is NotSupported
    (OCPP-J Table 7; errata 3.39)."""
    unsupported = []
    async with wire_pair(bus) as pair:
        for action in sorted(str(action) for action in Action):
            await pair.send(json.dumps([2, f"all-{action}", action, {}]))
            answer = await pair.next_frame()
            assert answer[1] == f"all-{action}" and answer[:3] != [4, answer[1], "NotImplemented"], answer
            if action in SENT_BY_CHARGE_POINTS:
                assert answer[:3] == [4, answer[1], "NotSupported"], answer
            elif answer[:3] == [4, answer[1], "NotSupported"]:
                unsupported.append(action)
    print(f"CSMS-initiated actions answered NotSupported: {unsupported or 'none'}")


def test_callerror_codes_leave_in_1_6_spelling_whoever_raised_them() -> None:
    assert json.loads(in_1_6_spelling('[4,"a","FormatViolation","d",{"x":1}]')) == [
        4, "a", "FormationViolation", "d", {"x": 1}]
    assert json.loads(in_1_6_spelling('[4,"b","OccurrenceConstraintViolation","",{}]'))[2] == \
        "OccurenceConstraintViolation"
    assert json.loads(in_1_6_spelling('[4,"c","MessageTypeNotSupported","",{}]'))[2] == "GenericError"
    for frame in ('[4,"d","NotSupported","",{}]', '[3,"e",{"status":"FormatViolation"}]',
                  '[2,"f","DataTransfer",{"vendorId":"FormatViolation"}]'):
        assert in_1_6_spelling(frame) is frame


async def _calling(pair: WirePair, timeout_s: float | None = None) -> tuple[asyncio.Task[Any], str]:
    """A Heartbeat from the charge point; returns its task and the CALL's message id."""
    task = asyncio.create_task(pair.connection.call(call.Heartbeat(), timeout_s=timeout_s))
    request = await pair.next_frame()
    assert request[:3] == [2, request[1], "Heartbeat"]
    return task, request[1]


def _heartbeat_answer(unique_id: str, hour: int) -> str:
    return json.dumps([3, unique_id, {"currentTime": f"2024-01-01T{hour:02d}:00:00.000Z"}])


@pytest.mark.django_db(transaction=True)
async def test_answers_no_call_waits_for_are_dropped_and_each_call_gets_its_own(bus: Bus) -> None:
    async with wire_pair(bus) as pair:
        for stray in ('[3, "nobody-asked", {}]', '[4, "nobody-asked", "GenericError", "", {}]') * 50:
            await pair.send(stray)
        task, unique_id = await _calling(pair)
        await pair.send(_heartbeat_answer(unique_id, 1))
        assert (await task).current_time.startswith("2024-01-01T01")

        task, unique_id = await _calling(pair, timeout_s=0.3)
        with pytest.raises(CsmsCallError) as timed_out:
            await task
        assert timed_out.value.failure is CallFailure.TIMEOUT
        await pair.send(_heartbeat_answer(unique_id, 2))  # too late: must not answer the next call

        task, unique_id = await _calling(pair)
        await pair.send(_heartbeat_answer(unique_id, 3))
        await pair.send(_heartbeat_answer(unique_id, 4))  # a duplicate: dropped
        assert (await task).current_time.startswith("2024-01-01T03")
        task, unique_id = await _calling(pair)
        await pair.send(_heartbeat_answer(unique_id, 5))
        assert (await task).current_time.startswith("2024-01-01T05")
        assert pair.up


@pytest.mark.django_db(transaction=True)
async def test_a_callerror_or_a_broken_answer_fails_the_call_at_once(bus: Bus) -> None:
    """A CSMS that answers CALLERROR (or garbage) makes the call fail now, which is what the
    transaction queue's retries count (OCPP-J errata 3.2), not after the message timeout."""
    loop = asyncio.get_running_loop()
    async with wire_pair(bus, response_timeout_s=30) as pair:
        for answer in ('[4, "{id}", "FormationViolation", "bad", {{}}]', '[4, "{id}"]',
                       '[4, "{id}", "NoSuchCode", 7, null]', '[3, "{id}", null]', '[3, "{id}"]',
                       '[3, "{id}", {{"currentTime": 12}}]'):
            task, unique_id = await _calling(pair)
            started = loop.time()
            await pair.send(answer.format(id=unique_id))
            with pytest.raises(CsmsCallError) as failed:
                await task
            assert failed.value.failure is CallFailure.CALL_ERROR, answer
            assert loop.time() - started < 2, answer
        assert pair.up


@pytest.mark.django_db(transaction=True)
async def test_a_call_that_would_break_its_schema_is_never_sent(bus: Bus) -> None:
    """Our own CALLs are checked before they go out (inline, protocol.py): an idTag longer than
    CiString20 fails the call at once and nothing reaches the CSMS."""
    async with wire_pair(bus) as pair:
        with pytest.raises(CsmsCallError) as refused:
            await pair.connection.call(call.Authorize(id_tag="X" * 21))
        assert refused.value.failure is CallFailure.CALL_ERROR and "not sent" in refused.value.detail
        task, unique_id = await _calling(pair)  # the next CALL is the first frame on the wire
        await pair.send(_heartbeat_answer(unique_id, 6))
        assert (await task).current_time.startswith("2024-01-01T06")


async def test_a_new_message_timeout_applies_to_the_very_next_call(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    """MessageTimeout (errata 3.82) is read for each CALL, not fixed per connection: after
    ChangeConfiguration(MessageTimeout=1) an unanswered StartTransaction is given up after ~1 s
    and sent again (the retry interval is 0.2 s), not after the 30 s the connection began with."""
    await _online(csms, start_ocpp16, OCPP_MESSAGE_TIMEOUT="30", OCPP_METER_VALUE_SAMPLE_INTERVAL="0")
    changed = await csms.send(CHARGE_POINT_ID, call.ChangeConfiguration(key="MessageTimeout", value="1"))
    assert changed.status == "Accepted"
    csms.behaviour.unanswered = {"StartTransaction": 1}
    await _session(bus, "short-timeout", "CARD6")
    await csms.wait_for_call("StopTransaction", timeout_s=10)
    lost, again = csms.calls("StartTransaction")
    waited_s = (again.at - lost.at).total_seconds()
    assert (lost.answered, again.answered) == (False, True)
    assert 1.0 <= waited_s < 5.0, f"the retry came {waited_s:.1f} s after the unanswered call"


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


async def test_a_frame_beyond_the_size_limit_closes_with_1009_and_nothing_queued_is_lost(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """websockets closes the connection (1009 message too big) on a frame over MAX_FRAME_BYTES;
    ocpp16 reconnects and the transaction message that was waiting for its answer is sent again."""
    ocpp16 = await _online(csms, start_ocpp16, OCPP_METER_VALUE_SAMPLE_INTERVAL="0",
                           OCPP_MESSAGE_TIMEOUT="60")
    csms.behaviour.unanswered = {"StartTransaction": 1}
    await _session(bus, "big-frame", "CARD5")
    await csms.wait_for_call("StartTransaction", answered=False)
    padding = "x" * (MAX_FRAME_BYTES + 1)
    await csms.send_raw(CHARGE_POINT_ID, json.dumps([2, "too-big", "DataTransfer",
                                                     {"vendorId": "test", "data": padding}]))

    stop = await csms.wait_for_call("StopTransaction", timeout_s=20)
    first, again = csms.calls("StartTransaction")
    assert first.payload == again.payload and (first.answered, again.answered) == (False, True)
    assert stop.payload["transactionId"] == again.response["transactionId"]
    assert len(csms.calls("StopTransaction")) == 1 and "too-big" not in str(csms.raw_replies)
    assert "1009" in ocpp16.log() and ocpp16.running

    async def both_delivered() -> bool:
        with sqlite3.connect(service_db) as db:
            states = db.execute("SELECT action, state FROM station_outboxmessage "
                                "WHERE session_id = 'big-frame' ORDER BY id").fetchall()
        return states == [("StartTransaction", "delivered"), ("StopTransaction", "delivered")]

    await async_wait_until(both_delivered, what="Start and Stop marked delivered")


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
