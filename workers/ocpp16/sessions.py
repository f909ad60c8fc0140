"""Turns smartw's session events into queued transaction messages.

Consumes contract.SESSIONS with a consumer group and acknowledges an event only after its
database write, so a crash in between replays the event; the writes are idempotent (a session
is recorded once, stopped once). Runs whether or not the CSMS is reachable.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ocpp.v16.enums import Action

from bus import Bus, contract
from bus.messages import SessionStarted, SessionStopped
from workers.ocpp16 import payloads
from workers.ocpp16.payloads import InvalidPayload, Payload
from workers.ocpp16.transaction_data import TransactionData
from workers.ocpp16.txkeys import TransactionKeys
from workers.ocpp16.txqueue import TransactionQueue, db

log = logging.getLogger(__name__)

GROUP = "ocpp16"


async def problem_with(action: str, payload: Payload) -> str | None:
    """Why the CSMS would refuse this payload by schema, or None if it is valid."""
    try:
        await payloads.check(action, payload)
    except InvalidPayload as error:
        return str(error)
    return None


class SessionRecorder:
    def __init__(self, bus: Bus, queue: TransactionQueue, keys: TransactionKeys,
                 on_queued: Callable[[], Awaitable[None]], transaction_data: TransactionData) -> None:
        self._bus = bus
        self._queue = queue
        self._keys = keys
        self._on_queued = on_queued
        self._transaction_data = transaction_data

    async def run(self, consumer: str) -> None:
        async for delivery in self._bus.consume(contract.SESSIONS, GROUP, consumer):
            if delivery is None:
                continue
            event = delivery.message
            if isinstance(event, SessionStarted):
                await self._started(event)
            else:
                await self._stopped(event)
            await delivery.ack()
            await self._on_queued()

    async def _started(self, event: SessionStarted) -> None:
        payload = payloads.start_transaction(event)
        problem = await problem_with(Action.start_transaction, payload)
        if await db(self._queue.record_start, event, payload, problem):
            log.info("session %s started on connector %s: StartTransaction queued",
                     event.session_id, event.connector_id)
            await self._transaction_data.begin(event)
            await self._keys.refresh(event.session_id)

    async def _stopped(self, event: SessionStopped) -> None:
        payload = await self._transaction_data.attach(event, payloads.stop_transaction(event, None))
        problem = await problem_with(Action.stop_transaction, payload)
        if await db(self._queue.record_stop, event, payload, problem) is not None:
            log.info("session %s stopped on connector %s (%s): StopTransaction queued",
                     event.session_id, event.connector_id, event.reason)
        await self._transaction_data.forget(event.session_id)
        await self._keys.stopped(event.connector_id, event.session_id)
