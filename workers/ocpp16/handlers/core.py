"""ChangeAvailability, Reset, UnlockConnector, DataTransfer (OCPP 1.6 §5.2, §5.14, §5.18, §5.6).

ChangeAvailability is smartw's to decide (contract.AVAILABILITY: it knows whether a session
runs, answers Scheduled then, and keeps the setting in its database so it survives a reboot);
the StatusNotification follows from the connector state smartw then publishes (status.py).
A smartw that does not answer in time means Rejected: nothing was changed that we know of.
Reset: reset.py; UnlockConnector: unlock.py; DataTransfer: data_transfer.py.
"""

from __future__ import annotations

import logging
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, AvailabilityStatus, AvailabilityType, ResetStatus, ResetType
from redis.exceptions import RedisError

from bus import BusRequestError, contract
from bus.messages import ChangeAvailabilityRequest
from workers.ocpp16 import data_transfer
from workers.ocpp16.handlers.base import HandlerBase
from workers.ocpp16.unlock import unlock_connector

log = logging.getLogger(__name__)

STATION = 0  # connectorId of the whole charge point


class CoreHandlers(HandlerBase):
    @on(Action.change_availability)
    async def on_change_availability(self, connector_id: int, type: str,
                                     **_: Any) -> call_result.ChangeAvailability:
        status = await self._change_availability(connector_id, type == AvailabilityType.operative)
        log.info("ChangeAvailability connector %s %s: %s", connector_id, type, status)
        return call_result.ChangeAvailability(status=status)

    async def _change_availability(self, connector_id: int, operative: bool) -> AvailabilityStatus:
        if connector_id != STATION and connector_id not in self.ctx.settings.connector_ids:
            return AvailabilityStatus.rejected
        request = ChangeAvailabilityRequest(connector_id=connector_id, operative=operative)
        try:
            reply = await self.ctx.bus.request(contract.AVAILABILITY, request)
        except (BusRequestError, RedisError) as error:
            log.error("ChangeAvailability: smartw did not answer (%s): Rejected", error)
            return AvailabilityStatus.rejected
        return AvailabilityStatus(reply.status)

    @on(Action.reset)
    def on_reset(self, type: str, **_: Any) -> call_result.Reset:
        return call_result.Reset(status=ResetStatus.accepted)

    @after(Action.reset)
    def after_reset(self, type: str, **_: Any) -> None:
        self.ctx.reset.request(ResetType(type))

    @on(Action.unlock_connector)
    async def on_unlock_connector(self, connector_id: int, **_: Any) -> call_result.UnlockConnector:
        settings = self.ctx.settings
        status = await unlock_connector(self.ctx.bus, settings.connector_ids, connector_id,
                                        settings.lock_connector_ids)
        return call_result.UnlockConnector(status=status)

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, message_id: str | None = None,
                               **_: Any) -> call_result.DataTransfer:
        status, data = await data_transfer.answer(self.ctx.bus, self.ctx.settings.connector_ids, vendor_id,
                                                  message_id)
        return call_result.DataTransfer(status=status, data=data)
