"""OCPP-J transport: one websocket to the CSMS at a time, reopened forever with back-off.

Why its own module: the security profiles (TLS server/client certificates, HTTP Basic with the
AuthorizationKey) only change how a connection is opened, so they live beside it and never in
the protocol code. Everything the rest of ocpp16 sees from the network is an `OcppSocket`
(text frames in/out, each logged at DEBUG) and one domain error, `TransportError`, whose
`kind` says what failed (the security log needs to tell a 401 from a bad server certificate).

Rules followed (ocpp16.md §4, §7): the charge point id is appended percent-encoded; the
`ocpp1.6` subprotocol is offered and must be the one the server selected; every failure,
including HTTP 404 for an unknown id and 401, is retried with a growing delay plus a random
part so a fleet does not reconnect in step; a connection that dies young does not reset the
back-off. Frames up to `MAX_FRAME_BYTES` (4 MiB) are accepted: a full local list or a
GetConfiguration of every key is far above websockets' 1 MiB default.

`Link` re-reads its settings before every attempt, because `connect(...)` arguments are fixed
per connection (§7): a new AuthorizationKey, SecurityProfile or WebSocketPingInterval takes
effect through `Link.reopen()`, which waits for a moment when no CALL is unanswered in either
direction (the ChangeConfiguration that asked for it included; at most REOPEN_GRACE_S), then
closes and reconnects at once.

Secrets: the Basic password travels only as bytes in `TransportSettings` (not in its repr);
the Authorization header is built here and the handshake logger never logs at DEBUG, where
websockets would print every header; frames are logged with the AuthorizationKey masked
(frame_text.redact_frame). The open-call tracking reads only a frame's head (frame_text).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NoReturn, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from workers.ocpp16.frame_text import CALL, frame_head, redact_frame

log = logging.getLogger(__name__)
# websockets logs every handshake header at DEBUG, the Authorization header included: its
# logger for our connections stays at INFO whatever the root level is.
_handshake_log = logging.getLogger(f"{__name__}.handshake")
_handshake_log.setLevel(logging.INFO)

SUBPROTOCOL = "ocpp1.6"
HEALTHY_AFTER_S = 10.0  # a connection that lived this long resets the back-off
FIRST_DELAY_S = 1.0  # back-off before the second attempt, doubling ...
MAX_DELAY_S = 60.0  # ... up to this (OCPP_RECONNECT_MAX overrides both through TransportSettings)
CLOSE_TIMEOUT_S = 5.0  # wait for the closing handshake, s
RANDOM_PART = 0.5  # each delay gets up to +50 % at random
MAX_FRAME_BYTES = 4 * 1024 * 1024  # largest incoming frame (websockets' default is 1 MiB)
REOPEN_GRACE_S = 5.0  # a requested reopen waits at most this long for open CALLs to be answered
HTTP_UNAUTHORIZED = 401
# TLS alert reasons (OpenSSL) meaning "the TLS version was refused" / "the CSMS refused our certificate"
TLS_VERSION_REASONS = frozenset({"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION",
                                 "NO_PROTOCOLS_AVAILABLE"})
CLIENT_CERTIFICATE_REASONS = frozenset({"TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_BAD_CERTIFICATE",
                                        "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_CERTIFICATE_UNKNOWN"})



class FailureKind(StrEnum):
    """What went wrong with a connection (drives the security log and the profile fallback)."""

    NETWORK = "network"  # unreachable, refused, timed out, garbage on the wire
    CLOSED = "closed"  # an open connection closed
    HTTP_STATUS = "http_status"  # the CSMS answered the upgrade with an HTTP error (404 ...)
    UNAUTHORIZED = "unauthorized"  # HTTP 401, or the CSMS refused our client certificate
    SERVER_CERTIFICATE = "server_certificate"  # the CSMS's TLS certificate did not verify
    TLS_VERSION = "tls_version"  # no TLS version both sides accept
    PROTOCOL = "protocol"  # the ocpp1.6 subprotocol was not selected
    CONFIGURATION = "configuration"  # our own settings cannot work (e.g. profile 2 on ws://)


class TransportError(Exception):
    """The connection to the CSMS could not be opened, or it closed."""

    def __init__(self, message: str, kind: FailureKind = FailureKind.CLOSED) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class TransportSettings:
    csms_url: str  # base URL (OCPP_CSMS_URL); the charge point id is appended
    charge_point_id: str
    ping_interval_s: float | None = 60.0  # None = no client pings
    open_timeout_s: float = 10.0
    first_delay_s: float = FIRST_DELAY_S
    max_delay_s: float = MAX_DELAY_S
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)  # wss:// only
    basic_password: bytes | None = field(default=None, repr=False)  # HTTP Basic (security profiles 1, 2)

    @property
    def endpoint(self) -> str:
        return f"{self.csms_url.rstrip('/')}/{quote(self.charge_point_id, safe='')}"

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.csms_url).scheme.lower() == "wss"


def redact(url: str) -> str:
    """The URL without user-info, for logs (a Basic-auth password may sit there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def basic_authorization(user: str, password: bytes) -> str:
    """The HTTP Basic header value from raw password bytes (OCPP-J §6.2.2: the AuthorizationKey's
    bytes, not its hex text, follow `<charge point id>:`)."""
    return "Basic " + base64.b64encode(user.encode() + b":" + password).decode("ascii")


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
    """What the `ocpp` library's ChargePoint needs from a connection: text frames in and out.

    It also tracks the CALLs still unanswered in either direction, so a requested reopen waits
    for a quiet moment and never cuts off the answer to the request that caused it."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._open_calls: set[tuple[str, str]] = set()  # ("in" | "out", message id)
        self._quiet = asyncio.Event()
        self._quiet.set()

    async def recv(self) -> str:
        try:
            frame = await self._ws.recv()
        except ConnectionClosed as error:
            raise TransportError(f"connection closed: {error}") from error
        if isinstance(frame, bytes):  # OCPP-J uses text frames; decode rather than choke
            log.warning("binary frame from the CSMS (%d bytes) read as UTF-8", len(frame))
            frame = frame.decode("utf-8", errors="replace")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("<- %s", redact_frame(frame))
        self._track(frame, "in")
        return frame

    async def send(self, frame: str) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("-> %s", redact_frame(frame))
        try:
            await self._ws.send(frame)
        except ConnectionClosed as error:
            raise TransportError(f"connection closed: {error}") from error
        self._track(frame, "out")

    def _track(self, frame: str, direction: str) -> None:
        head = frame_head(frame)
        if head is None:
            return
        if head.message_type == CALL:
            self._open_calls.add((direction, head.unique_id))
            self._quiet.clear()
            return
        asker = "out" if direction == "in" else "in"
        self._open_calls.discard((asker, head.unique_id))
        if not self._open_calls:
            self._quiet.set()

    async def quiet(self, timeout_s: float) -> bool:
        """Wait until every CALL sent or received so far was answered; False after `timeout_s`."""
        try:
            await asyncio.wait_for(self._quiet.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        await self._ws.close()


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify(error: Exception) -> TransportError:
    """One TransportError for whatever opening a connection raised. Under TLS 1.3 a CSMS that
    refuses our client certificate just closes the connection: that reads as NETWORK."""
    for cause in _causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return TransportError(f"CSMS certificate refused: {cause.verify_message}",
                                  FailureKind.SERVER_CERTIFICATE)
        if isinstance(cause, ssl.SSLError) and cause.reason in TLS_VERSION_REASONS:
            return TransportError(f"no common TLS version: {cause.reason}", FailureKind.TLS_VERSION)
        if isinstance(cause, ssl.SSLError) and cause.reason in CLIENT_CERTIFICATE_REASONS:
            return TransportError(f"the CSMS refused our certificate: {cause.reason}",
                                  FailureKind.UNAUTHORIZED)
        if isinstance(cause, InvalidStatus):
            status = cause.response.status_code
            kind = FailureKind.UNAUTHORIZED if status == HTTP_UNAUTHORIZED else FailureKind.HTTP_STATUS
            return TransportError(f"the CSMS answered HTTP {status}", kind)
    return TransportError(f"cannot connect: {error}", FailureKind.NETWORK)


async def open_connection(settings: TransportSettings) -> ClientConnection:
    """Open one connection; raise TransportError if it fails or ocpp1.6 was not selected."""
    url, headers = settings.endpoint, None
    if settings.basic_password is not None:  # not both user-info and a header (both would be sent)
        url = redact(url)
        headers = {"Authorization": basic_authorization(settings.charge_point_id, settings.basic_password)}
    try:
        ws = await connect(url, subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                           additional_headers=headers,
                           ssl=settings.ssl_context if settings.uses_tls else None,
                           ping_interval=settings.ping_interval_s, open_timeout=settings.open_timeout_s,
                           close_timeout=CLOSE_TIMEOUT_S, max_size=MAX_FRAME_BYTES, logger=_handshake_log)
    except (OSError, TimeoutError, WebSocketException) as error:
        raise classify(error) from error
    if ws.subprotocol != SUBPROTOCOL:
        await ws.close()
        raise TransportError(f"the CSMS did not select subprotocol {SUBPROTOCOL} (got {ws.subprotocol!r})",
                             FailureKind.PROTOCOL)
    return ws


class LinkObserver(Protocol):
    """Told about every opened connection and every failed attempt (the security feature:
    events, profile fallback)."""

    async def link_opened(self) -> None: ...

    async def link_failed(self, error: TransportError) -> None: ...


SettingsSource = Callable[[], Awaitable[TransportSettings]]
OnOpen = Callable[[OcppSocket], Awaitable[None]]


class Link:
    """The one connection to the CSMS, reopened forever; `reopen()` applies new settings."""

    def __init__(self, settings: SettingsSource, on_open: OnOpen,
                 observer: LinkObserver | None = None) -> None:
        self._settings = settings
        self._on_open = on_open
        self._observer = observer
        self._reopen = asyncio.Event()

    def reopen(self, reason: str) -> None:
        """Close the current connection at its next quiet moment (no CALL unanswered) and open
        a new one at once with fresh settings; while offline, cut the back-off wait short."""
        log.info("CSMS link: reopening (%s)", reason)
        self._reopen.set()

    async def run_forever(self) -> NoReturn:
        backoff: Backoff | None = None
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            self._reopen.clear()
            opened_at: float | None = None
            try:
                settings = await self._settings()
                backoff = backoff or Backoff(settings.first_delay_s, settings.max_delay_s)
                ws = await open_connection(settings)
                opened_at = loop.time()
                log.info("connected to %s%s", redact(settings.endpoint),
                         f" after {failures} failed attempts" if failures else "")
                failures = 0
                if self._observer is not None:
                    await self._tell(self._observer.link_opened(), "an opened connection")
                await self._serve(ws)
            except TransportError as error:
                failures += 1 if opened_at is None else 0
                report = log.error if error.kind is FailureKind.CONFIGURATION else log.warning
                (report if failures <= 1 else log.debug)("CSMS link: %s", error)
                if opened_at is None and self._observer is not None:
                    await self._tell(self._observer.link_failed(error), "a failed attempt")
            if self._reopen.is_set():
                continue
            backoff = backoff or Backoff(FIRST_DELAY_S, MAX_DELAY_S)  # no settings yet: the defaults
            if opened_at is not None and loop.time() - opened_at >= HEALTHY_AFTER_S:
                backoff.reset()
            delay = backoff.next()
            log.debug("reconnecting to the CSMS in %.1f s", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reopen.wait(), delay)

    async def _serve(self, ws: ClientConnection) -> None:
        """Run `on_open` until it ends (TransportError: the link failed) or a reopen is asked
        for (then return normally once the connection is closed)."""
        socket = OcppSocket(ws)
        session = asyncio.ensure_future(self._on_open(socket))
        reopen = asyncio.ensure_future(self._reopen.wait())
        try:
            await asyncio.wait({session, reopen}, return_when=asyncio.FIRST_COMPLETED)
            if session.done():
                session.result()
                return
            if not await socket.quiet(REOPEN_GRACE_S):
                log.warning("reopening with CALLs still unanswered")
            await ws.close()
            await asyncio.wait({session}, timeout=CLOSE_TIMEOUT_S)
        finally:
            reopen.cancel()
            if not session.done():
                session.cancel()
            await asyncio.gather(session, reopen, return_exceptions=True)
            await ws.close()

    @staticmethod
    async def _tell(notice: Awaitable[None], what: str) -> None:
        try:
            await notice
        except Exception:  # the link must outlive a bug in what observes it
            log.exception("CSMS link observer failed on %s", what)

