"""TriggerMessage and ExtendedTriggerMessage (OCPP 1.6 §5.17, errata 3.35; Security Whitepaper
ed.2 §3.3): what the CSMS may ask the station to send now, and how.

The handler decides the answer (`decide`) and this module keeps what to do once that answer
has left (`answered`, from the handler's @after): the CALLRESULT always goes first (ocpp16.md
§6.3). Triggered messages carry current information and go through the in-memory lane
(notices.send_soon); a triggered StatusNotification joins the status reporter's queue behind
the transitions already waiting, so the CSMS never ends with an older state.

- connectorId outside 0..N (or negative): Rejected. Where it does not matter (BootNotification,
  Heartbeat, the status notifications of firmware, diagnostics and logs) it is ignored.
- BootNotification: Rejected once Accepted (errata 3.35: until the next reboot or reconnect);
  while Pending or Rejected the service sends it now instead of after the interval.
- While not Accepted only BootNotification can be triggered (a CP sends nothing else then).
- Heartbeat; StatusNotification (connectorId given: that one, absent: 0 and every connector);
  MeterValues (context Trigger, meter.triggered_meter_values: connectorId given: that one, 0 the
  station meter; absent: every connector; Rejected when there is no reading to report).
- DiagnosticsStatusNotification, FirmwareStatusNotification, LogStatusNotification: the status of
  the upload or update in progress, Idle when none (diagnostics.py, firmware.py); through
  ExtendedTriggerMessage FirmwareStatusNotification is the signed one (L01).
- SignChargePointCertificate (ExtendedTriggerMessage): a new CSR (ctx.security, A02).
- Anything else: NotImplemented.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ocpp.v16 import call
from ocpp.v16.enums import Action, MessageTrigger, RegistrationStatus, TriggerMessageStatus

from workers.ocpp16.meter import triggered_meter_values
from workers.ocpp16.payloads import to_call

if TYPE_CHECKING:
    from workers.ocpp16.context import ChargePointContext
    from workers.ocpp16.status import StatusReporter

log = logging.getLogger(__name__)

MAX_WAITING = 10  # answers whose @after never ran (the answer could not be sent) are forgotten
EXTENDED_ONLY = frozenset({MessageTrigger.log_status_notification,
                           MessageTrigger.sign_charge_point_certificate})
CONNECTOR_MATTERS = frozenset({MessageTrigger.status_notification, MessageTrigger.meter_values})

FollowUp = Callable[[], Awaitable[None] | None]


class Triggers:
    def __init__(self, ctx: ChargePointContext) -> None:
        self._ctx = ctx
        self._boot: Callable[[], None] | None = None
        self._status: StatusReporter | None = None
        self._waiting: dict[str, list[FollowUp]] = {}

    def attach(self, *, boot: Callable[[], None], status: StatusReporter) -> None:
        """The service's part: send the next BootNotification now; the StatusNotification queue."""
        self._boot = boot
        self._status = status

    async def decide(self, call_id: str, requested: str, connector_id: int | None, *,
                     extended: bool) -> TriggerMessageStatus:
        """The answer to a (Extended)TriggerMessage; what it asks for is sent after `answered`."""
        actions = await self._actions(requested, connector_id, extended)
        if isinstance(actions, TriggerMessageStatus):
            log.info("%sTriggerMessage %s (connector %s): %s", "Extended" if extended else "", requested,
                     connector_id, actions)
            return actions
        self._waiting[call_id] = actions
        for stale in list(self._waiting)[:-MAX_WAITING]:
            del self._waiting[stale]
        return TriggerMessageStatus.accepted

    async def answered(self, call_id: str) -> None:
        for action in self._waiting.pop(call_id, []):
            outcome = action()
            if outcome is not None:
                await outcome

    async def _actions(self, requested: str, connector_id: int | None,
                       extended: bool) -> list[FollowUp] | TriggerMessageStatus:
        """What to do, or the answer when there is nothing to do."""
        ctx = self._ctx
        known = {0, *ctx.settings.connector_ids}
        if connector_id is not None and requested in CONNECTOR_MATTERS and connector_id not in known:
            return TriggerMessageStatus.rejected
        if requested == MessageTrigger.boot_notification:
            return self._boot_actions()
        if ctx.registration() != RegistrationStatus.accepted:
            return TriggerMessageStatus.rejected
        if requested in EXTENDED_ONLY and not extended:
            return TriggerMessageStatus.not_implemented
        return await self._message_actions(MessageTrigger(requested), connector_id, extended)

    def _boot_actions(self) -> list[FollowUp] | TriggerMessageStatus:
        if self._ctx.registration() == RegistrationStatus.accepted or self._boot is None:
            return TriggerMessageStatus.rejected
        return [self._boot]

    async def _message_actions(self, requested: MessageTrigger, connector_id: int | None,
                               extended: bool) -> list[FollowUp] | TriggerMessageStatus:
        ctx = self._ctx
        match requested:
            case MessageTrigger.heartbeat:
                return [self._send(call.Heartbeat())]
            case MessageTrigger.status_notification if self._status is not None:
                return [self._queue_status(self._status, connector_id)]
            case MessageTrigger.meter_values:
                return await self._meter_values(connector_id)
            case MessageTrigger.diagnostics_status_notification:
                return [self._send(call.DiagnosticsStatusNotification(
                    status=ctx.diagnostics.triggered_diagnostics_status()))]
            case MessageTrigger.firmware_status_notification if extended:
                firmware, request_id = ctx.firmware.triggered_signed_status()
                signed = call.SignedFirmwareStatusNotification(status=firmware, request_id=request_id)
                return [self._send(signed)]
            case MessageTrigger.firmware_status_notification:
                return [self._send(call.FirmwareStatusNotification(status=ctx.firmware.triggered_status()))]
            case MessageTrigger.log_status_notification:
                status, request_id = ctx.diagnostics.triggered_log_status()
                return [self._send(call.LogStatusNotification(status=status, request_id=request_id))]
            case MessageTrigger.sign_charge_point_certificate if ctx.security is not None:
                return [ctx.security.request_certificate_signing]
        return TriggerMessageStatus.not_implemented

    async def _meter_values(self, connector_id: int | None) -> list[FollowUp] | TriggerMessageStatus:
        ids = self._ctx.settings.connector_ids if connector_id is None else (connector_id,)
        read = [await triggered_meter_values(self._ctx.bus, self._ctx.config, cid) for cid in ids]
        payloads = [payload for payload in read if payload is not None]
        if not payloads:
            return TriggerMessageStatus.rejected
        return [self._send(to_call(Action.meter_values, payload)) for payload in payloads]

    def _send(self, request: Any) -> FollowUp:
        return lambda: self._ctx.notices.send_soon(request)

    @staticmethod
    def _queue_status(status: StatusReporter, connector_id: int | None) -> FollowUp:
        def queue() -> None:
            status.queue_current(connector_id)
        return queue
