"""TriggerMessage and ExtendedTriggerMessage (OCPP 1.6 §5.17; Security Whitepaper ed.2 §3.3),
decided by `ctx.triggers` (triggers.py); what was asked for is sent from @after, once the
answer has left."""

from __future__ import annotations

from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from workers.ocpp16.handlers.base import HandlerBase


class TriggerHandlers(HandlerBase):
    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message: str, call_unique_id: str,
                                 connector_id: int | None = None, **_: Any) -> call_result.TriggerMessage:
        status = await self.ctx.triggers.decide(call_unique_id, requested_message, connector_id,
                                                extended=False)
        return call_result.TriggerMessage(status=status)

    @after(Action.trigger_message)
    async def after_trigger_message(self, call_unique_id: str, **_: Any) -> None:
        await self.ctx.triggers.answered(call_unique_id)

    @on(Action.extended_trigger_message)
    async def on_extended_trigger_message(self, requested_message: str, call_unique_id: str,
                                          connector_id: int | None = None,
                                          **_: Any) -> call_result.ExtendedTriggerMessage:
        status = await self.ctx.triggers.decide(call_unique_id, requested_message, connector_id,
                                                extended=True)
        return call_result.ExtendedTriggerMessage(status=status)

    @after(Action.extended_trigger_message)
    async def after_extended_trigger_message(self, call_unique_id: str, **_: Any) -> None:
        await self.ctx.triggers.answered(call_unique_id)
