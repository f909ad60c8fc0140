"""A central system (CSMS) for development and tests, built on the `ocpp` library's server side.

Why it exists: ocpp16 must be checked against a real OCPP 1.6-J peer, not a mock. The library's
central-system role validates every CALL the charge point sends against the 1.6 JSON schemas,
so this CSMS is also our conformance check: keep it strict (no `skip_schema_validation`).

It accepts `ws://host:port/<path>/<charge point id>` with the `ocpp1.6` subprotocol, answers the
Core messages a charge point sends, records every received CALL in order (with the answer it
gave), and can send RemoteStart/RemoteStopTransaction or a raw frame to a connected charge point.
For the security profiles it can serve `wss://` (give it an `ssl.SSLContext`; one that requires
client certificates checks the station's, profile 3) and check HTTP Basic passwords per charge
point (`behaviour.basic_auth_passwords`, HTTP 401 otherwise, profiles 1-2); every opening
handshake is recorded (`handshakes`: the Authorization header as received, the client
certificate's CN and serial, the HTTP status given).
Tests run it in-process (`await Csms(...).start()`, `stop()`, `start()` again on the same port);
operators run it with `python manage.py csms`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import logging
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from ocpp.v16 import call
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from workers.sim.csms_charge_point import CentralSystemChargePoint, CsmsBehaviour, ocpp_time

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp1.6"
CALL, CALLRESULT, CALLERROR = 2, 3, 4


@dataclass
class ReceivedCall:
    """A CALL a charge point sent, in arrival order, with how we answered it."""

    charge_point_id: str
    unique_id: str
    action: str
    payload: Any
    at: datetime
    answered: bool = False
    error_code: str | None = None  # the CALLERROR code we answered with, if any
    response: Any = None  # the CALLRESULT payload we answered with (e.g. the transactionId given)


@dataclass
class Handshake:
    """One opening handshake a charge point made, and how we answered it."""

    charge_point_id: str  # as in the URL (decoded), or the whole path when it names none
    authorization: str | None  # the Authorization header exactly as received
    client_common_name: str | None  # CN of a verified client certificate (TLS)
    client_serial: str | None  # its serial number (hex, as OpenSSL prints it)
    status: int = 101  # 101 switched, 401 bad Basic credentials, 404 unknown charge point


def basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    """(user, password bytes) of an HTTP Basic header, None if it is not one."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except binascii.Error:
        return None
    return (user.decode("utf-8", errors="replace"), password) if colon else None


def _client_certificate(connection: ServerConnection) -> tuple[str | None, str | None]:
    peer = connection.transport.get_extra_info("peercert") if connection.transport else None
    if not peer:
        return None, None
    names = [value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"]
    return (names[0] if names else None), peer.get("serialNumber")


class RecordingConnection:
    """The websocket as the library sees it (recv/send), noting how each CALL was answered."""

    def __init__(self, ws: ServerConnection, charge_point_id: str, csms: Csms) -> None:
        self._ws = ws
        self._id = charge_point_id
        self._csms = csms

    async def recv(self) -> str:
        frame = await self._ws.recv()
        return frame if isinstance(frame, str) else frame.decode("utf-8", errors="replace")

    async def send(self, frame: str) -> None:
        """Send; if the charge point already closed, say so and go on: frames it sent before
        closing are still buffered and must be read (an answer to one of our CALLs may be there)."""
        self._csms._note_answer(self._id, frame)
        log.debug("%s <- %s", self._id, frame)
        try:
            await self._ws.send(frame)
        except ConnectionClosed:
            log.info("%s closed before our frame went out: %.100s", self._id, frame)

    async def send_raw(self, frame: str) -> None:
        log.info("%s <- raw %s", self._id, frame)
        await self._ws.send(frame)


class Csms:
    """The central system: a websocket server plus a record of what the charge points sent."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/ocpp",
                 behaviour: CsmsBehaviour | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.ssl_context = ssl_context  # wss:// when set; may be replaced between stop() and start()
        self.port = port
        self.path = "/" + path.strip("/") if path.strip("/") else ""
        self.behaviour = behaviour or CsmsBehaviour()
        self.received: list[ReceivedCall] = []
        self.raw_replies: list[Any] = []  # frames answering our raw CALLs, decoded
        self.handshake_rejections = 0
        self.handshakes: list[Handshake] = []
        self._raw_ids: set[str] = set()
        self._transaction_ids = itertools.count(1)
        self._server: Server | None = None
        self._connected: dict[str, tuple[CentralSystemChargePoint, RecordingConnection]] = {}
        self._changed = asyncio.Condition()

    # ---- lifecycle ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL a charge point is given (OCPP_CSMS_URL); it appends its id."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self.host}:{self.port}{self.path}"

    async def start(self) -> None:
        """Listen; after a stop, listen again on the same port."""
        self._server = await serve(self._handle, self.host, self.port, subprotocols=[SUBPROTOCOL],
                                   process_request=self._check_handshake, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("CSMS listening on %s/<charge point id>", self.url)

    async def stop(self) -> None:
        """Stop listening and close every charge point's connection."""
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None
        self._connected.clear()
        log.info("CSMS stopped")

    async def __aenter__(self) -> Csms:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def next_transaction_id(self) -> int:
        return next(self._transaction_ids)

    # ---- what the charge points sent ------------------------------------------------

    def calls(self, action: str | None = None, charge_point_id: str | None = None) -> list[ReceivedCall]:
        """Received CALLs in arrival order, optionally of one action / one charge point."""
        return [c for c in self.received
                if (action is None or c.action == action)
                and (charge_point_id is None or c.charge_point_id == charge_point_id)]

    def is_connected(self, charge_point_id: str) -> bool:
        return charge_point_id in self._connected

    async def wait_for_call(self, action: str, *, count: int = 1, timeout_s: float = 10.0,
                            answered: bool = True) -> ReceivedCall:
        """Wait until `count` CALLs of `action` arrived (and were answered, unless `answered`
        is False); return the last. Raises TimeoutError naming what was received instead."""

        def matching() -> list[ReceivedCall]:
            return [c for c in self.calls(action) if c.answered or not answered]

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: len(matching()) >= count), timeout_s)
            except TimeoutError:
                seen = [(c.action, c.payload) for c in self.received[-10:]]
                raise TimeoutError(f"no {count} x {action} within {timeout_s} s; last received: {seen}") \
                    from None
        return matching()[count - 1]

    async def wait_connected(self, charge_point_id: str, timeout_s: float = 10.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.is_connected(charge_point_id)),
                                   timeout_s)

    # ---- what we send ----------------------------------------------------------------

    async def remote_start(self, charge_point_id: str, id_tag: str,
                           connector_id: int | None = None) -> str:
        """RemoteStartTransaction; returns the charge point's status (Accepted/Rejected)."""
        charge_point, _ = self._connection_of(charge_point_id)
        request = call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector_id)
        result = await charge_point.call(request, suppress=False)
        return str(result.status)

    async def remote_stop(self, charge_point_id: str, transaction_id: int) -> str:
        """RemoteStopTransaction; returns the charge point's status (Accepted/Rejected)."""
        charge_point, _ = self._connection_of(charge_point_id)
        result = await charge_point.call(call.RemoteStopTransaction(transaction_id=transaction_id),
                                         suppress=False)
        return str(result.status)

    async def send(self, charge_point_id: str, request: Any, timeout_s: float = 10.0) -> Any:
        """Send any `ocpp.v16.call.<Action>` and return the charge point's CALLRESULT dataclass;
        a CALLERROR raises the library's OCPPError subclass (its `code` is the wire code)."""
        charge_point, _ = self._connection_of(charge_point_id)
        return await asyncio.wait_for(charge_point.call(request, suppress=False), timeout_s)

    async def send_raw(self, charge_point_id: str, frame: str) -> None:
        """Send any text, valid or not; a reply to a raw CALL lands in `raw_replies`."""
        try:
            message = json.loads(frame)
            if isinstance(message, list) and len(message) > 1 and message[0] == CALL:
                self._raw_ids.add(str(message[1]))
        except json.JSONDecodeError:
            pass  # not JSON on purpose: nothing will answer it
        _, connection = self._connection_of(charge_point_id)
        await connection.send_raw(frame)

    def _connection_of(self, charge_point_id: str) -> tuple[CentralSystemChargePoint, RecordingConnection]:
        try:
            return self._connected[charge_point_id]
        except KeyError:
            raise LookupError(f"charge point {charge_point_id!r} is not connected") from None

    # ---- server internals -------------------------------------------------------------

    def _charge_point_id(self, path: str) -> str | None:
        prefix = self.path + "/"
        rest = path.split("?", 1)[0]
        if not rest.startswith(prefix) or "/" in rest[len(prefix):] or rest == prefix:
            return None
        return unquote(rest[len(prefix):])

    def _check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        charge_point_id = self._charge_point_id(request.path)
        handshake = Handshake(charge_point_id or request.path, request.headers.get("Authorization"),
                              *_client_certificate(connection))
        self.handshakes.append(handshake)
        known = self.behaviour.known_charge_points
        if charge_point_id is None or (known is not None and charge_point_id not in known):
            self.handshake_rejections += 1
            handshake.status = 404
            log.warning("refused %s: unknown charge point (HTTP 404)", request.path)
            return connection.respond(404, "Unknown charge point\n")
        password = self.behaviour.basic_auth_passwords.get(charge_point_id)
        if password is not None and basic_credentials(handshake.authorization) != (charge_point_id, password):
            self.handshake_rejections += 1
            handshake.status = 401
            log.warning("refused %s: missing or wrong Basic credentials (HTTP 401)", charge_point_id)
            response = connection.respond(401, "Unauthorized\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp"'
            return response
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        charge_point_id = self._charge_point_id(ws.request.path if ws.request else "") or "?"
        connection = RecordingConnection(ws, charge_point_id, self)
        charge_point = CentralSystemChargePoint(charge_point_id, connection, self)
        self._connected[charge_point_id] = (charge_point, connection)
        log.info("%s connected (subprotocol %s)", charge_point_id, ws.subprotocol)
        await self._notify()
        try:
            while True:
                frame = await connection.recv()
                if self._take_raw_reply(frame):
                    continue
                received = self._record(charge_point_id, frame)
                if received is None or not self.behaviour.take_unanswered(received.action):
                    await charge_point.route_message(frame)
                await self._notify()
        except ConnectionClosed as closed:
            log.info("%s disconnected (%s)", charge_point_id, closed)
        finally:
            if self._connected.get(charge_point_id, (None,))[0] is charge_point:
                del self._connected[charge_point_id]
            await self._notify()

    def _take_raw_reply(self, frame: str) -> bool:
        try:
            message = json.loads(frame)
        except json.JSONDecodeError:
            return False
        if isinstance(message, list) and len(message) > 1 and message[0] in (CALLRESULT, CALLERROR) \
                and str(message[1]) in self._raw_ids:
            self._raw_ids.discard(str(message[1]))
            self.raw_replies.append(message)
            return True
        return False

    def _record(self, charge_point_id: str, frame: str) -> ReceivedCall | None:
        try:
            message = json.loads(frame)
        except json.JSONDecodeError:
            log.warning("%s sent a frame that is not JSON: %.200s", charge_point_id, frame)
            return None
        if not (isinstance(message, list) and len(message) == 4 and message[0] == CALL):
            return None
        log.info("%s -> %s %s", charge_point_id, message[2], json.dumps(message[3]))
        received = ReceivedCall(charge_point_id, str(message[1]), str(message[2]), message[3],
                                datetime.now(UTC))
        self.received.append(received)
        return received

    def _note_answer(self, charge_point_id: str, frame: str) -> None:
        message = json.loads(frame)
        if message[0] not in (CALLRESULT, CALLERROR):
            return
        for received in reversed(self.received):
            if received.charge_point_id == charge_point_id and received.unique_id == message[1]:
                received.answered = True
                if message[0] == CALLRESULT:
                    received.response = message[2]
                if message[0] == CALLERROR:
                    received.error_code = message[2]
                    log.warning("%s: answered %s with CALLERROR %s: %s", charge_point_id,
                                received.action, message[2], message[3])
                return

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


async def run_until_stopped(csms: Csms, stop: asyncio.Event) -> None:
    """Serve until `stop` is set (the management command sets it on SIGINT/SIGTERM)."""
    await csms.start()
    try:
        await stop.wait()
    finally:
        await csms.stop()


__all__ = ["Csms", "CsmsBehaviour", "Handshake", "ReceivedCall", "basic_credentials", "ocpp_time",
           "run_until_stopped"]
