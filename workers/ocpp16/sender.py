"""Sends the transaction queue to the CSMS: strictly in order, one message at a time, only
while connected and Accepted (ocpp16 starts `run()` per connection after registration).

Messages come a `Window` at a time (one query for up to WINDOW_ROWS); each answer is recorded
(`delivered`, one statement) before the next message goes out. A failed attempt ends the window:
the queue is read again, so the retry's wait and count come from the database.

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
from workers.ocpp16.txqueue import Outgoing, TransactionQueue, Window, db

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
        self._delivering: asyncio.Future[bool] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self, connection: CsmsConnection) -> None:
        """Deliver until the connection closes (then CsmsCallError OFFLINE ends it)."""
        await self._settle_previous()
        while True:
            self._wake.clear()
            window = await db(self._queue.window)
            if not window:
                await self._sleep(IDLE_CHECK_S)
                continue
            await self._send_window(connection, window)
            await self._on_change()

    async def _send_window(self, connection: CsmsConnection, window: Window) -> None:
        """Send the window's messages in order; stop at the first one that failed."""
        while (head := window.next()) is not None:
            wait_s = head.wait_s(timezone.now())
            if wait_s > 0:
                await self._sleep(wait_s, wakeable=False)
            # Shielded: cancelling the sender (connection lost, service stopping) must not lose
            # an answer already received; the next run() waits for this delivery to settle.
            self._delivering = asyncio.ensure_future(self._deliver(connection, window, head))
            if not await asyncio.shield(self._delivering):
                return

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

    async def _deliver(self, connection: CsmsConnection, window: Window, head: Outgoing) -> bool:
        """Send `head` once; True when it is settled (delivered or given up), False when it
        waits for a retry."""
        try:
            request = to_call(head.action, head.payload)
        except TypeError as error:  # a stored payload that no longer fits the message
            log.error("%s #%s is malformed and is dropped: %s", head.action, head.row_id, error)
            await db(self._queue.failed_attempt, head.row_id, f"malformed: {error}", final=True)
            window.given_up(head)
            return True
        try:
            result = await connection.call(request, checked=True)  # checked when it was queued
        except CsmsCallError as error:
            if error.failure is CallFailure.OFFLINE:
                raise
            given_up = await db(self._queue.failed_attempt, head.row_id, str(error))
            log.warning("%s #%s attempt %d failed (%s)%s", head.action, head.row_id, head.attempts + 1,
                        error, "; given up" if given_up else "; will retry")
            if given_up:
                window.given_up(head)
            return given_up
        tx = await db(self._queue.delivered, head, dataclasses.asdict(result))
        window.delivered(head, None if tx is None else tx.transaction_id)
        log.info("%s #%s delivered%s", head.action, head.row_id,
                 f" (transactionId {tx.transaction_id})" if tx else "")
        if tx is not None and tx.stopped_at is None:  # a replayed session that ended has no key
            await self._keys.refresh(tx.session_id)
        id_tag = head.payload.get("idTag")
        if id_tag:
            await self._auth.transaction_answered(id_tag, getattr(result, "id_tag_info", None), tx)
        return True
