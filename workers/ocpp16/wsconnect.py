"""OCPP-J transport: one websocket to the CSMS at a time, reopened forever with back-off.

Why its own module: the security profiles (TLS server/client certificates, HTTP Basic with the
AuthorizationKey) only change how a connection is opened, so they land here without touching
the protocol code. Everything the rest of ocpp16 sees from the network is an `OcppSocket`
(text frames in/out, each logged at DEBUG) and one domain error, `TransportError`.

Rules followed (ocpp16.md §4, §7): the charge point id is appended percent-encoded; the
`ocpp1.6` subprotocol is offered and must be the one the server selected; every failure,
including HTTP 404 for an unknown id, is retried with a growing delay plus a random part so
a fleet does not reconnect in step; a connection that dies young does not reset the back-off.
OCPP frames of this skeleton carry no secrets; the URL is logged without user-info.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp1.6"
HEALTHY_AFTER_S = 10.0  # a connection that lived this long resets the back-off
CLOSE_TIMEOUT_S = 5.0  # wait for the closing handshake, s
RANDOM_PART = 0.5  # each delay gets up to +50 % at random


class TransportError(Exception):
    """The connection to the CSMS could not be opened, or it closed."""


@dataclass(frozen=True)
class TransportSettings:
    csms_url: str  # base URL (OCPP_CSMS_URL); the charge point id is appended
    charge_point_id: str
    ping_interval_s: float | None = 60.0  # None = no client pings
    open_timeout_s: float = 10.0
    first_delay_s: float = 1.0
    max_delay_s: float = 60.0

    @property
    def endpoint(self) -> str:
        return f"{self.csms_url.rstrip('/')}/{quote(self.charge_point_id, safe='')}"


def redact(url: str) -> str:
    """The URL without user-info, for logs (a Basic-auth password may sit there later)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class Backoff:
    """Delays of `first` doubling up to `maximum`, each with a random part on top."""

    def __init__(self, first_s: float, maximum_s: float, rng: Callable[[], float] = random.random) -> None:
        self.first_s = first_s
        self.maximum_s = maximum_s
        self._rng = rng
        self._failures = 0

    def next(self) -> float:
        base = min(self.maximum_s, self.first_s * 2 ** min(self._failures, 30))
        self._failures += 1
        return base * (1 + RANDOM_PART * self._rng())

    def reset(self) -> None:
        self._failures = 0


class OcppSocket:
    """What the `ocpp` library's ChargePoint needs from a connection: text frames in and out."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def recv(self) -> str:
        try:
            frame = await self._ws.recv()
        except ConnectionClosed as error:
            raise TransportError(f"connection closed: {error}") from error
        if isinstance(frame, bytes):  # OCPP-J uses text frames; decode rather than choke
            log.warning("binary frame from the CSMS (%d bytes) read as UTF-8", len(frame))
            frame = frame.decode("utf-8", errors="replace")
        log.debug("<- %s", frame)
        return frame

    async def send(self, frame: str) -> None:
        log.debug("-> %s", frame)
        try:
            await self._ws.send(frame)
        except ConnectionClosed as error:
            raise TransportError(f"connection closed: {error}") from error

    async def close(self) -> None:
        await self._ws.close()


async def open_connection(settings: TransportSettings) -> ClientConnection:
    """Open one connection; raise TransportError if it fails or ocpp1.6 was not selected."""
    try:
        ws = await connect(settings.endpoint, subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                           ping_interval=settings.ping_interval_s, open_timeout=settings.open_timeout_s,
                           close_timeout=CLOSE_TIMEOUT_S)
    except (OSError, TimeoutError, WebSocketException) as error:
        raise TransportError(f"cannot connect: {error}") from error
    if ws.subprotocol != SUBPROTOCOL:
        await ws.close()
        raise TransportError(f"the CSMS did not select subprotocol {SUBPROTOCOL} (got {ws.subprotocol!r})")
    return ws


async def run_forever(settings: TransportSettings,
                      on_open: Callable[[OcppSocket], Awaitable[None]]) -> NoReturn:
    """Open a connection, hand it to `on_open` until it closes (a TransportError out of
    `on_open` or a normal return), then reopen after the back-off; never returns."""
    backoff = Backoff(settings.first_delay_s, settings.max_delay_s)
    loop = asyncio.get_running_loop()
    failures = 0
    while True:
        opened_at: float | None = None
        try:
            ws = await open_connection(settings)
            opened_at = loop.time()
            log.info("connected to %s%s", redact(settings.endpoint),
                     f" after {failures} failed attempts" if failures else "")
            failures = 0
            try:
                await on_open(OcppSocket(ws))
            finally:
                await ws.close()
        except TransportError as error:
            failures += 1 if opened_at is None else 0
            report = log.warning if failures <= 1 else log.debug
            report("CSMS link: %s", error)
        if opened_at is not None and loop.time() - opened_at >= HEALTHY_AFTER_S:
            backoff.reset()
        delay = backoff.next()
        log.debug("reconnecting to the CSMS in %.1f s", delay)
        await asyncio.sleep(delay)
