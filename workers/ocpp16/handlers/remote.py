"""RemoteStartTransaction / RemoteStopTransaction (OCPP 1.6 §5.11, §5.12), over smartw's bus
commands (remote.py). With AuthorizeRemoteTxRequests=true a remote start is authorized like a
local one; when that needs Authorize.req, the start is held until this handler has answered
and its `@after` hook releases it (workers/ocpp16/auth/remote_start.py)."""

from __future__ import annotations

import logging
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, RemoteStartStopStatus

from workers.ocpp16.handlers.base import HandlerBase

log = logging.getLogger(__name__)


def _status(accepted: bool) -> RemoteStartStopStatus:
    return RemoteStartStopStatus.accepted if accepted else RemoteStartStopStatus.rejected


class RemoteHandlers(HandlerBase):
    @on(Action.remote_start_transaction)
    async def on_remote_start_transaction(self, id_tag: str, connector_id: int | None = None,
                                          call_unique_id: str = "",
                                          charging_profile: dict[str, Any] | None = None,
                                          **_: Any) -> call_result.RemoteStartTransaction:
        profile = None
        if charging_profile is not None:  # a TxProfile for the transaction this starts (ocpp16.md §2.7)
            connector_id = await self.ctx.remote.start_target(connector_id, id_tag)
            if connector_id is not None:
                profile = await self.ctx.smart_charging.remote_start_profile(charging_profile, connector_id)
            if profile is None:
                return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.rejected)
        if await self.ctx.auth.remote_start_needs_csms(id_tag):
            target = await self.ctx.remote.start_target(connector_id, id_tag)
            accepted = target is not None
            if target is not None:
                self.ctx.auth.remote_starts.hold(call_unique_id, id_tag, target)
        else:
            accepted = await self.ctx.remote.remote_start(id_tag, connector_id)
        log.info("RemoteStartTransaction idTag %s connector %s: %s", id_tag, connector_id,
                 "Accepted" if accepted else "Rejected")
        if profile is not None and not accepted:
            await self.ctx.smart_charging.remote_start_refused(profile)
        return call_result.RemoteStartTransaction(status=_status(accepted))

    @after(Action.remote_start_transaction)
    def after_remote_start_transaction(self, call_unique_id: str, **_: Any) -> None:
        self.ctx.auth.remote_starts.release(call_unique_id)

    @on(Action.remote_stop_transaction)
    async def on_remote_stop_transaction(self, transaction_id: int,
                                         **_: Any) -> call_result.RemoteStopTransaction:
        accepted = await self.ctx.remote.remote_stop(transaction_id)
        log.info("RemoteStopTransaction %s: %s", transaction_id, "Accepted" if accepted else "Rejected")
        return call_result.RemoteStopTransaction(status=_status(accepted))
