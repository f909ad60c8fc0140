"""The transport reads what it needs from a frame's head only, as parsed JSON (frame_text.py):
the message id for wsconnect's open-call tracking (however the CSMS escaped it) and, for the
logs, whether a frame is the ChangeConfiguration that carries the AuthorizationKey (however
the key is spelled)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.server import ServerConnection, serve

from workers.ocpp16.frame_text import HIDDEN_FRAME, FrameHead, frame_head, redact_frame
from workers.ocpp16.wsconnect import (
    MAX_FRAME_BYTES,
    SUBPROTOCOL,
    OcppSocket,
    TransportSettings,
    open_connection,
)

SECRET = "4f43415f4f4354545f61646d696e5f74657374"  # hex of the OCTT TC_073_CS password


def _big_frame(unique_id: str = "big") -> str:
    """A DataTransfer of nearly MAX_FRAME_BYTES, with backslashes (the old pattern's worst case)."""
    data = "ab\\\\" * ((MAX_FRAME_BYTES - 100) // 4)
    return f'[2, "{unique_id}", "DataTransfer", {{"vendorId": "v", "data": "{data}"}}]'


@pytest.mark.parametrize(("frame", "head"), [
    ('[2,"1","Heartbeat",{}]', FrameHead(2, "1", "Heartbeat")),
    (' [ 3 ,\n "caf\\u00e9" , {}]', FrameHead(3, "café", None)),  # escapes: the id as parsed
    ('[4,"é","GenericError","",{}]', FrameHead(4, "é", None)),
    ('[2,"a\\"b","Change\\u0043onfiguration",{}]', FrameHead(2, 'a"b', "ChangeConfiguration")),
    ('[2,"x",17,{}]', FrameHead(2, "x", None)),  # an action that is no string
])
def test_the_head_is_read_as_json(frame: str, head: FrameHead) -> None:
    assert frame_head(frame) == head


@pytest.mark.parametrize("frame", ["", "not json", "[]", '{"a": 1}', '[5,"x"]', '[23,"x"]', '[2.0,"x"]',
                                   '[2,5,"Heartbeat",{}]', '[2,"never closed', '[2,"bad \\x escape"]'])
def test_a_frame_without_an_ocpp_j_head_has_none(frame: str) -> None:
    assert frame_head(frame) is None


def test_reading_the_head_of_a_4_mib_frame_does_not_read_the_frame() -> None:
    frame = _big_frame()
    started = time.perf_counter()
    for _ in range(10):
        assert frame_head(frame) == FrameHead(2, "big", "DataTransfer")
        assert redact_frame(frame) is frame
    assert time.perf_counter() - started < 0.05  # the old patterns took ~0.4 s per frame


def _masked_value(redacted: str) -> str:
    return json.loads(redacted)[3]["value"]


@pytest.mark.parametrize("key", ["AuthorizationKey", "authorizationkey", "AUTHORIZATIONKEY",
                                 "Authorization\\u004bey", "\\u0041uthorizationKey"])
def test_the_authorization_key_is_masked_however_it_is_written(key: str) -> None:
    frame = f'[2,"7","ChangeConfiguration",{{"key":"{key}","value":"{SECRET}"}}]'
    redacted = redact_frame(frame)
    assert SECRET not in redacted and _masked_value(redacted) == "***"


def test_frames_that_may_carry_the_key_are_masked_or_hidden_and_others_kept() -> None:
    escaped_action = f'[2,"8","Change\\u0043onfiguration",{{"key":"AuthorizationKey","value":"{SECRET}"}}]'
    assert _masked_value(redact_frame(escaped_action)) == "***"
    numeric_id = f'[2,8,"ChangeConfiguration",{{"key":"AuthorizationKey","value":"{SECRET}"}}]'
    assert _masked_value(redact_frame(numeric_id)) == "***"  # no valid CALL, still masked
    escaped_key_cut = f'[2,"9","ChangeConfiguration",{{"key":"Authorization\\u004bey","value":"{SECRET}'
    for cut in (escaped_action[:-3], escaped_key_cut):
        assert redact_frame(cut) == HIDDEN_FRAME
    odd_shape = f'[2,"10","ChangeConfiguration",{{"key":"AuthorizationKey","value":"{SECRET}","x":1}}]'
    assert SECRET not in redact_frame(odd_shape)
    kept = ['[2,"11","ChangeConfiguration",{"key":"HeartbeatInterval","value":"30"}]',
            '[2,"12","GetConfiguration",{"key":["AuthorizationKey"]}]',
            '[3,"13",{"configurationKey":[],"unknownKey":["AuthorizationKey"]}]',
            "not json and no key", '[2,"14","Heartbeat",{}]']
    for frame in kept:
        assert redact_frame(frame) == frame


@asynccontextmanager
async def _socket_pair() -> AsyncIterator[tuple[OcppSocket, ServerConnection]]:
    """An OcppSocket connected to a websocket server end the test drives."""
    ends: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def accept(ws: ServerConnection) -> None:
        await ends.put(ws)
        await ws.wait_closed()

    async with serve(accept, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        settings = TransportSettings(f"ws://127.0.0.1:{port}", "WS-1", ping_interval_s=None)
        client = await open_connection(settings)
        try:
            yield OcppSocket(client), await asyncio.wait_for(ends.get(), 5)
        finally:
            await client.close()


async def test_open_calls_are_matched_by_their_parsed_ids() -> None:
    """A CALL whose id the CSMS wrote with escapes or non-ASCII text is answered with the id as
    the library writes it (ASCII escapes, or none): the tracking still sees it answered, so a
    requested reopen does not wait for a CALL that was answered long ago."""
    async with _socket_pair() as (socket, csms_end):
        for written, answered in (("caf\\u00e9", "café"), ("café", "caf\\u00e9"), ('a\\"b', 'a\\u0022b'),
                                  ("plain", "plain")):
            await csms_end.send(f'[2,"{written}","Heartbeat",{{}}]')
            await socket.recv()
            assert not await socket.quiet(0.01)
            await socket.send(f'[3,"{answered}",{{}}]')
            assert await socket.quiet(0.01), written
        await socket.send('[2,"ours","Heartbeat",{}]')
        assert not await socket.quiet(0.01)
        await csms_end.send('[4,"our\\u0073","GenericError","",{}]')
        await socket.recv()
        assert await socket.quiet(0.01)
