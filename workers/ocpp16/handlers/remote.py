"""RemoteStartTransaction / RemoteStopTransaction (OCPP 1.6 §5.11, §5.12), over smartw's bus
commands (remote.py)."""

from __future__ import annotations

import logging
from typing import Any

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, RemoteStartStopStatus

from workers.ocpp16.handlers.base import HandlerBase

log = logging.getLogger(__name__)


def _status(accepted: bool) -> RemoteStartStopStatus:
    return RemoteStartStopStatus.accepted if accepted else RemoteStartStopStatus.rejected


class RemoteHandlers(HandlerBase):
    @on(Action.remote_start_transaction)
    async def on_remote_start_transaction(self, id_tag: str, connector_id: int | None = None,
                                          **_: Any) -> call_result.RemoteStartTransaction:
        accepted = await self.ctx.remote.remote_start(id_tag, connector_id)
        log.info("RemoteStartTransaction idTag %s connector %s: %s", id_tag, connector_id,
                 "Accepted" if accepted else "Rejected")
        return call_result.RemoteStartTransaction(status=_status(accepted))

    @on(Action.remote_stop_transaction)
    async def on_remote_stop_transaction(self, transaction_id: int,
                                         **_: Any) -> call_result.RemoteStopTransaction:
        accepted = await self.ctx.remote.remote_stop(transaction_id)
        log.info("RemoteStopTransaction %s: %s", transaction_id, "Accepted" if accepted else "Rejected")
        return call_result.RemoteStopTransaction(status=_status(accepted))
