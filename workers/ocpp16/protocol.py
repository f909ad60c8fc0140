"""The OCPP 1.6 protocol seam: a `ocpp.v16.ChargePoint` subclass per connection (STYLE habit 8).

`StationChargePoint` combines the handlers for CALLs the CSMS sends (handlers/, one mixin per
feature profile); they reach the station through the `ChargePointContext` given to it.
`CsmsConnection` owns one connection: its receive loop and `call()`, the one place where the
library's outcomes (CALLERROR exceptions, timeouts, a dropped socket) become one domain error,
`CsmsCallError`.

Library limits handled here (ocpp16.md §6.2, §6.3):
- every frame is read by frames.py first: no frame, however malformed, ends the receive loop;
  each CALL gets exactly one answer, with the OCPP-J 1.6 code when it is refused (an unknown
  action NotImplemented, a known one without handler NotSupported, schema errors by keyword);
- every frame sent passes one rewrite (`_OutgoingSide`, error_codes.in_1_6_spelling), so a
  CALLERROR raised anywhere carries a code OCPP-J 1.6 defines (FormationViolation ...);
- a CALLRESULT/CALLERROR reaches the library only if a `call()` waits for that very id: a late,
  duplicate or unknown answer is logged and dropped instead of being taken by the next call;
- a CALL still waiting when the socket drops fails at once instead of at the response timeout;
- the library fixes its response timeout when a ChargePoint is built: `call()` applies
  MessageTimeout itself, read for each CALL, so a change counts from the very next one;
- our CALLs and their answers are checked against the schemas here, inline (frames.py), and the
  library skips its own checks, which run on a worker thread and cost more than they check.
Handlers never call the CSMS themselves (no re-entrancy): follow-up CALLs go from tasks.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError

from workers.ocpp16.error_codes import CallErrorCode, call_error_frame, in_1_6_spelling
from workers.ocpp16.frames import (
    Incoming,
    MessageType,
    Rejection,
    answer_payload,
    answer_violation,
    check_call,
    read,
    schema_violation,
    well_formed_answer,
)
from workers.ocpp16.handlers.configuration import ConfigurationHandlers
from workers.ocpp16.handlers.core import CoreHandlers
from workers.ocpp16.handlers.firmware import FirmwareHandlers
from workers.ocpp16.handlers.local_auth import LocalAuthHandlers
from workers.ocpp16.handlers.remote import RemoteHandlers
from workers.ocpp16.handlers.reservation import ReservationHandlers
from workers.ocpp16.handlers.security import SecurityHandlers
from workers.ocpp16.handlers.smart_charging import SmartChargingHandlers
from workers.ocpp16.handlers.trigger import TriggerHandlers
from workers.ocpp16.wsconnect import TransportError

if TYPE_CHECKING:
    from workers.ocpp16.context import ChargePointContext

log = logging.getLogger(__name__)
_library_log = logging.getLogger(f"{__name__}.library")
_library_log.setLevel(logging.WARNING)  # the library logs each frame at INFO; OcppSocket logs them at DEBUG

ANSWER_GRACE_S = 0.5  # after a close, time for an answer already read to be processed
LIBRARY_RESPONSE_TIMEOUT_S = 24 * 3600.0  # never reached: call() applies MessageTimeout first
ANSWER_PREFIXES = ("[3,", "[4,")  # how the library (compact separators) and we start answers
LOGGED_ID_CHARS = 40


class FrameChannel(Protocol):
    """Text frames to and from the CSMS (wsconnect.OcppSocket, or the frame log's wrapper of it)."""

    async def recv(self) -> str: ...

    async def send(self, frame: str) -> None: ...


class CallFailure(StrEnum):
    """Why a CALL to the CSMS got no CALLRESULT."""

    OFFLINE = "offline"  # no connection, or it closed while we waited
    TIMEOUT = "timeout"  # no answer within the message timeout
    CALL_ERROR = "call_error"  # CALLERROR, or an answer that breaks the schema


class CsmsCallError(Exception):
    """A CALL to the CSMS failed; `failure` says how, `detail` is for the log."""

    def __init__(self, action: str, failure: CallFailure, detail: str = "") -> None:
        super().__init__(f"{action}: {failure.value}{' - ' + detail if detail else ''}")
        self.action = action
        self.failure = failure
        self.detail = detail


class StationChargePoint(CoreHandlers, ConfigurationHandlers, RemoteHandlers, LocalAuthHandlers,
                         SmartChargingHandlers, ReservationHandlers, TriggerHandlers, FirmwareHandlers,
                         SecurityHandlers):
    """Handlers for the CALLs a CSMS sends to this charge point, one mixin per profile."""

    def __init__(self, charge_point_id: str, connection: _OutgoingSide, ctx: ChargePointContext) -> None:
        super().__init__(charge_point_id, connection, response_timeout=LIBRARY_RESPONSE_TIMEOUT_S,
                         logger=_library_log)
        self.ctx = ctx
        self.handled_actions = frozenset(action for action, hooks in self.route_map.items()
                                         if "_on_action" in hooks)
        self.unchecked_actions = frozenset(action for action, hooks in self.route_map.items()
                                           if hooks.get("_skip_schema_validation"))


class _OutgoingSide:
    """The connection as the library sees it: every frame sent, by the library or by us,
    passes the 1.6 CALLERROR spelling here; answers are counted (one per CALL received)."""

    def __init__(self, channel: FrameChannel) -> None:
        self._channel = channel
        self.answers_sent = 0

    async def send(self, frame: str) -> None:
        frame = in_1_6_spelling(frame)
        if frame.startswith(ANSWER_PREFIXES):
            self.answers_sent += 1
        await self._channel.send(frame)


@dataclass(frozen=True)
class _Awaited:
    """A CALL of ours whose answer a `call()` waits for."""

    action: str
    broken_answer: asyncio.Future[str]  # set (to why) when its CALLRESULT breaks the schema


class CsmsConnection:
    """One open connection to the CSMS and the fresh ChargePoint on it. `timeout_s` gives the
    message timeout, asked anew for every CALL (the MessageTimeout key)."""

    def __init__(self, socket: FrameChannel, charge_point_id: str, ctx: ChargePointContext,
                 timeout_s: Callable[[], float]) -> None:
        self._socket = socket
        self._outgoing = _OutgoingSide(socket)
        self._closed = asyncio.Event()
        self._timeout_s = timeout_s
        self._awaited: dict[str, _Awaited] = {}  # by message id
        self.charge_point = StationChargePoint(charge_point_id, self._outgoing, ctx)

    @property
    def is_open(self) -> bool:
        return not self._closed.is_set()

    def close(self) -> None:
        """Mark closed: CALLs still waiting fail at once with OFFLINE."""
        self._closed.set()

    async def receive(self) -> None:
        """Route frames until the socket closes (raises TransportError then)."""
        try:
            while True:
                frame = await self._socket.recv()
                await self._route(frame)
        finally:
            self.close()

    async def _route(self, frame: str) -> None:
        incoming = read(frame)
        if incoming is None:
            log.warning("ignored a frame from the CSMS that is no OCPP-J message: %.200s", frame)
            return
        try:
            if incoming.message_type is MessageType.CALL:
                await self._answer(incoming)
            else:
                await self._take_answer(incoming)
        except TransportError:
            raise
        except Exception:  # a frame the library cannot digest must not end the connection
            log.exception("frame from the CSMS could not be handled: %.200s", frame)

    async def _answer(self, call: Incoming) -> None:
        """Answer a CALL exactly once: refused here, or by its handler (through the library);
        whatever fails on the way, an InternalError if nothing was answered yet."""
        answered_before = self._outgoing.answers_sent
        try:
            verdict = check_call(call, self.charge_point.handled_actions, self.charge_point.unchecked_actions)
            if isinstance(verdict, Rejection):
                log.warning("CALL (id %.*s) refused: %s %s", LOGGED_ID_CHARS, call.unique_id, verdict.code,
                            verdict.description)
                await self._send_error(call.unique_id, verdict.code, verdict.description, verdict.details)
                return
            await self.charge_point.route_message(verdict)
        except TransportError:
            raise
        except Exception:
            log.exception("CALL (id %.*s) failed: %.200s", LOGGED_ID_CHARS, call.unique_id, call.text)
            if self._outgoing.answers_sent == answered_before:
                await self._send_error(call.unique_id, CallErrorCode.INTERNAL_ERROR,
                                       "An unexpected error occurred.")

    async def _send_error(self, unique_id: str, code: CallErrorCode, description: str,
                          details: dict[str, Any] | None = None) -> None:
        await self._outgoing.send(call_error_frame(unique_id, code, description, details))

    async def _take_answer(self, answer: Incoming) -> None:
        awaited = self._awaited.pop(answer.unique_id, None)  # a duplicate answer finds none
        if awaited is None:
            log.warning("ignored a %s for no CALL we wait for (id %.*s)", answer.message_type.name,
                        LOGGED_ID_CHARS, answer.unique_id)
            return
        if answer.message_type is MessageType.CALLRESULT:
            problem = answer_violation(awaited.action, answer_payload(answer))
            if problem is not None:
                awaited.broken_answer.set_result(problem)
                return
        await self.charge_point.route_message(well_formed_answer(answer))

    async def call(self, request: Any, *, timeout_s: float | None = None, checked: bool = False) -> Any:
        """Send a CALL and return the library's CALLRESULT dataclass, or raise CsmsCallError.
        The answer is awaited `timeout_s`, by default the message timeout as it is now. The
        request is checked against its schema unless `checked` says that was done already
        (the transaction queue checks each message when it is queued); the answer always is."""
        action = type(request).__name__
        if not self.is_open:
            raise CsmsCallError(action, CallFailure.OFFLINE, "not connected")
        if not checked:
            _check_request(action, request)
        unique_id = str(uuid.uuid4())
        broken_answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._awaited[unique_id] = _Awaited(action, broken_answer)
        sending = asyncio.ensure_future(self.charge_point.call(request, suppress=False, unique_id=unique_id,
                                                               skip_schema_validation=True))
        closing = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({sending, closing, broken_answer}, return_when=asyncio.FIRST_COMPLETED,
                               timeout=self._timeout_s() if timeout_s is None else timeout_s)
            if closing.done() and not sending.done():  # its answer may have come just before the close
                await asyncio.wait({sending, broken_answer}, timeout=ANSWER_GRACE_S,
                                   return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._awaited.pop(unique_id, None)
            closing.cancel()
            if not sending.done():
                sending.cancel()
        if broken_answer.done():
            raise CsmsCallError(action, CallFailure.CALL_ERROR, broken_answer.result())
        if not sending.done() or sending.cancelled():
            failure = CallFailure.OFFLINE if closing.done() else CallFailure.TIMEOUT
            raise CsmsCallError(action, failure, "connection closed" if closing.done() else "")
        return _outcome(action, sending)


def _check_request(action: str, request: Any) -> None:
    """Raise CsmsCallError when our own CALL would break its schema (the payload as sent)."""
    violation = schema_violation(action, remove_nones(snake_to_camel_case(serialize_as_dict(request))))
    if violation is not None:
        raise CsmsCallError(action, CallFailure.CALL_ERROR, f"not sent: {violation.description}")


def _outcome(action: str, sending: asyncio.Future[Any]) -> Any:
    try:
        return sending.result()
    except OCPPError as error:
        raise CsmsCallError(action, CallFailure.CALL_ERROR,
                            f"{error.code}: {error.description}") from error
    except UnknownCallErrorCodeError as error:
        raise CsmsCallError(action, CallFailure.CALL_ERROR, str(error)[:200]) from error
    except TransportError as error:
        raise CsmsCallError(action, CallFailure.OFFLINE, str(error)) from error
