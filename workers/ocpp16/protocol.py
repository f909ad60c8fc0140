"""The OCPP 1.6 protocol seam: a `ocpp.v16.ChargePoint` subclass per connection (STYLE habit 8).

`StationChargePoint` combines the handlers for CALLs the CSMS sends (handlers/, one mixin per
feature profile); they reach the station through the `ChargePointContext` given to it.
`CsmsConnection` owns one connection: its receive loop and `call()`, the one place where the
library's outcomes (CALLERROR exceptions, timeouts, a dropped socket) become one domain error,
`CsmsCallError`.

Library limits handled here (ocpp16.md §6.2, §6.3): a CALL still waiting when the socket drops
fails at once instead of at the response timeout; a malformed frame is logged and dropped,
never ending the receive loop; an unknown action is answered NotImplemented and a known but
unhandled one NotSupported, as OCPP-J Table 7 says (the library has them the other way round).
Handlers never call the CSMS themselves (no re-entrancy): follow-up CALLs go from tasks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.exceptions import NotSupportedError, OCPPError, UnknownCallErrorCodeError, ValidationError
from ocpp.messages import Call
from ocpp.v16 import ChargePoint
from ocpp.v16.enums import Action

from workers.ocpp16.handlers.configuration import ConfigurationHandlers
from workers.ocpp16.handlers.core import CoreHandlers
from workers.ocpp16.handlers.firmware import FirmwareHandlers
from workers.ocpp16.handlers.local_auth import LocalAuthHandlers
from workers.ocpp16.handlers.remote import RemoteHandlers
from workers.ocpp16.handlers.reservation import ReservationHandlers
from workers.ocpp16.handlers.security import SecurityHandlers
from workers.ocpp16.handlers.smart_charging import SmartChargingHandlers
from workers.ocpp16.handlers.trigger import TriggerHandlers
from workers.ocpp16.wsconnect import OcppSocket, TransportError

if TYPE_CHECKING:
    from workers.ocpp16.context import ChargePointContext

log = logging.getLogger(__name__)
_library_log = logging.getLogger(f"{__name__}.library")
_library_log.setLevel(logging.WARNING)  # the library logs each frame at INFO; OcppSocket logs them at DEBUG

CALL = 2
ANSWER_GRACE_S = 0.5  # after a close, time for an answer already read to be processed
KNOWN_ACTIONS = frozenset(str(action) for action in Action)


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

    def __init__(self, charge_point_id: str, socket: OcppSocket, ctx: ChargePointContext,
                 response_timeout_s: float) -> None:
        super().__init__(charge_point_id, socket, response_timeout=response_timeout_s,
                         logger=_library_log)
        self.ctx = ctx


def unroutable_call_error(frame: str, charge_point: ChargePoint) -> str | None:
    """The CALLERROR for a CALL we have no handler for, with the OCPP-J codes; None otherwise."""
    try:
        message = json.loads(frame)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not (isinstance(message, list) and len(message) == 4 and message[0] == CALL
            and isinstance(message[1], str) and isinstance(message[2], str)):
        return None
    action = message[2]
    if action not in KNOWN_ACTIONS:
        error: OCPPError = OcppNotImplemented(description=f"{action} is not an OCPP 1.6 action")
    elif "_on_action" not in charge_point.route_map.get(action, {}):
        error = NotSupportedError(description=f"{action} is not supported by this charge point")
    else:
        return None
    return Call(message[1], action, {}).create_call_error(error).to_json()


class CsmsConnection:
    """One open connection to the CSMS and the fresh ChargePoint on it."""

    def __init__(self, socket: OcppSocket, charge_point_id: str, ctx: ChargePointContext,
                 response_timeout_s: float) -> None:
        self._socket = socket
        self._closed = asyncio.Event()
        self.charge_point = StationChargePoint(charge_point_id, socket, ctx, response_timeout_s)

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
        rejection = unroutable_call_error(frame, self.charge_point)
        if rejection is not None:
            log.warning("CSMS sent a CALL we do not handle: %.200s", frame)
            await self._socket.send(rejection)
            return
        try:
            await self.charge_point.route_message(frame)
        except TransportError:
            raise
        except Exception:  # a frame the library cannot digest must not end the connection
            log.exception("frame from the CSMS could not be handled and was dropped: %.200s", frame)

    async def call(self, request: Any, *, timeout_s: float | None = None) -> Any:
        """Send a CALL and return the library's CALLRESULT dataclass, or raise CsmsCallError."""
        action = type(request).__name__
        if not self.is_open:
            raise CsmsCallError(action, CallFailure.OFFLINE, "not connected")
        sending = asyncio.ensure_future(self.charge_point.call(request, suppress=False))
        closing = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({sending, closing}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if closing.done() and not sending.done():  # its answer may have come just before the close
                await asyncio.wait({sending}, timeout=ANSWER_GRACE_S)
        finally:
            closing.cancel()
            if not sending.done():
                sending.cancel()
        if not sending.done() or sending.cancelled():
            failure = CallFailure.OFFLINE if closing.done() else CallFailure.TIMEOUT
            raise CsmsCallError(action, failure, "connection closed" if closing.done() else "")
        return _outcome(action, sending)


def _outcome(action: str, sending: asyncio.Future[Any]) -> Any:
    try:
        return sending.result()
    except TimeoutError as error:
        raise CsmsCallError(action, CallFailure.TIMEOUT, str(error)[:200]) from error
    except OCPPError as error:
        raise CsmsCallError(action, CallFailure.CALL_ERROR,
                            f"{error.code}: {error.description}") from error
    except (UnknownCallErrorCodeError, ValidationError) as error:
        raise CsmsCallError(action, CallFailure.CALL_ERROR, str(error)[:200]) from error
    except TransportError as error:
        raise CsmsCallError(action, CallFailure.OFFLINE, str(error)) from error
