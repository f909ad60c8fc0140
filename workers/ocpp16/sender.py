"""Sends the transaction queue to the CSMS: strictly in order, one message at a time, only
while connected and Accepted (ocpp16 starts `run()` per connection after registration).

The idTagInfo of a StartTransaction or StopTransaction answer goes to the authorizer (cache,
local list conflicts, a refused idTag on a running transaction: workers/ocpp16/auth)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from django.utils import timezone

from workers.ocpp16.payloads import to_call
from workers.ocpp16.protocol import CallFailure, CsmsCallError, CsmsConnection
from workers.ocpp16.txkeys import TransactionKeys
from workers.ocpp16.txqueue import Outgoing, TransactionQueue, db

if TYPE_CHECKING:
    from workers.ocpp16.auth.authorizer import Authorizer

log = logging.getLogger(__name__)

IDLE_CHECK_S = 5.0  # re-read the queue this often even without a wake-up


class QueueSender:
    """Delivers `TransactionQueue` messages; `wake()` when something was queued."""

    def __init__(self, queue: TransactionQueue, keys: TransactionKeys,
                 on_change: Callable[[], Awaitable[None]], auth: Authorizer) -> None:
        self._queue = queue
        self._keys = keys
        self._auth = auth
        self._on_change = on_change
        self._wake = asyncio.Event()
        self._delivering: asyncio.Future[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self, connection: CsmsConnection) -> None:
        """Deliver until the connection closes (then CsmsCallError OFFLINE ends it)."""
        await self._settle_previous()
        while True:
            self._wake.clear()
            head = await db(self._queue.head)
            if head is None:
                await self._sleep(IDLE_CHECK_S)
                continue
            wait_s = head.wait_s(timezone.now())
            if wait_s > 0:
                await self._sleep(wait_s, wakeable=False)
                continue
            # Shielded: cancelling the sender (connection lost, service stopping) must not lose
            # an answer already received; the next run() waits for this delivery to settle.
            self._delivering = asyncio.ensure_future(self._deliver(connection, head))
            await asyncio.shield(self._delivering)
            await self._on_change()

    async def _settle_previous(self) -> None:
        delivering, self._delivering = self._delivering, None
        if delivering is None:
            return
        try:
            await delivering
        except CsmsCallError as error:
            log.debug("delivery interrupted by the previous connection's end: %s", error)

    async def _sleep(self, seconds: float, *, wakeable: bool = True) -> None:
        if not wakeable:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):  # a timeout = the periodic re-check of the queue
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _deliver(self, connection: CsmsConnection, head: Outgoing) -> None:
        try:
            request = to_call(head.action, head.payload)
        except TypeError as error:  # a stored payload that no longer fits the message
            log.error("%s #%s is malformed and is dropped: %s", head.action, head.row_id, error)
            await db(self._queue.failed_attempt, head.row_id, f"malformed: {error}", final=True)
            return
        try:
            result = await connection.call(request)
        except CsmsCallError as error:
            if error.failure is CallFailure.OFFLINE:
                raise
            given_up = await db(self._queue.failed_attempt, head.row_id, str(error))
            log.warning("%s #%s attempt %d failed (%s)%s", head.action, head.row_id, head.attempts + 1,
                        error, "; given up" if given_up else "; will retry")
            return
        tx = await db(self._queue.delivered, head.row_id, dataclasses.asdict(result))
        log.info("%s #%s delivered%s", head.action, head.row_id,
                 f" (transactionId {tx.transaction_id})" if tx else "")
        if tx is not None:
            await self._keys.refresh(tx.session_id)
        id_tag = head.payload.get("idTag")
        if id_tag:
            await self._auth.transaction_answered(id_tag, getattr(result, "id_tag_info", None), tx)
