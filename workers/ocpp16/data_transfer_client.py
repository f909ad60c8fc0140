"""DataTransfer to the CSMS (OCPP 1.6 §4.3): the bus command contract.OCPP_DATA_TRANSFER
(`manage.py ocpp data-transfer`) sends DataTransfer.req over the connection in use and returns
the CSMS's status and data, or why there is none: `offline` (not connected, or not Accepted:
nothing but BootNotification may go out then), `timeout`, or `call_error` (a CALLERROR or an
answer that breaks the schema). The other way is data_transfer.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ocpp.v16 import call

from bus import Bus, contract
from bus.messages import DataTransferReply, DataTransferRequest
from workers.ocpp16 import config_keys as keys
from workers.ocpp16.config_keys import ConfigurationStore
from workers.ocpp16.protocol import CallFailure, CsmsCallError, CsmsConnection

log = logging.getLogger(__name__)

REPLY_MARGIN_S = 1.0  # answer the bus before the caller's OCPP_DATA_TRANSFER timeout
LINK_WAIT_S = 2.0  # a request made while the link is (re)opening waits this long for it


class DataTransferClient:
    """Serves contract.OCPP_DATA_TRANSFER over the connection in use (a ConnectedFeature)."""

    def __init__(self, bus: Bus, config: ConfigurationStore) -> None:
        self._bus = bus
        self._config = config
        self._connection: CsmsConnection | None = None
        self._linked = asyncio.Event()

    async def run(self) -> None:
        await self._bus.serve(contract.OCPP_DATA_TRANSFER, self.send, stop=asyncio.Event())

    async def connected(self, connection: CsmsConnection) -> None:
        self._connection = connection
        self._linked.set()
        try:
            await asyncio.Event().wait()  # until the connection's work is cancelled
        finally:
            if self._connection is connection:
                self._connection = None
                self._linked.clear()

    async def send(self, request: DataTransferRequest) -> DataTransferReply:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._linked.wait(), LINK_WAIT_S)
        connection = self._connection
        if connection is None or not connection.is_open:
            return DataTransferReply(failure="offline", detail="not connected to the CSMS or not Accepted")
        timeout_s = min(self._config.get(keys.MESSAGE_TIMEOUT),
                        contract.OCPP_DATA_TRANSFER.timeout_s - REPLY_MARGIN_S)
        outgoing = call.DataTransfer(vendor_id=request.vendor_id, message_id=request.message_id,
                                     data=request.data)
        try:
            result = await connection.call(outgoing, timeout_s=timeout_s)
        except CsmsCallError as error:
            log.warning("DataTransfer to the CSMS failed: %s", error)
            return DataTransferReply(failure=_FAILURES[error.failure], detail=str(error)[:500])
        log.info("DataTransfer %s/%s: %s", request.vendor_id, request.message_id, result.status)
        return DataTransferReply(status=str(result.status), data=result.data)  # type: ignore[arg-type]


_FAILURES = {CallFailure.OFFLINE: "offline", CallFailure.TIMEOUT: "timeout",
             CallFailure.CALL_ERROR: "call_error"}
