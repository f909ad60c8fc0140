"""The second outgoing lane: CP-initiated CALLs that are not transaction messages.

Two kinds, both sent only while connected and Accepted, one CALL at a time (the library's
call lock keeps one outstanding CALL per direction, OCPP-J errata 3.4):

- `send_soon(request)`: current information the CSMS asked for or should hear now (the
  message a TriggerMessage asked for, a StatusNotification after ChangeAvailability). Kept in
  memory: after a reconnect it would be stale (TriggerMessage sends current information only).
  Handlers call it from an `@after` hook, so the CALL leaves after the handler's CALLRESULT
  (ocpp16.md §6.3: never call the CSMS from inside an `@on` handler).
- `queue_persisted(action, payload)`: messages that must not be lost (critical security
  events, firmware and diagnostics status): rows of `OutboxMessage` in the `other` lane,
  retried like transaction messages (TransactionMessageAttempts / RetryInterval) but never
  holding up the transaction queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from webapp.station.models import OutboxMessage
from workers.ocpp16.payloads import Payload, to_call
from workers.ocpp16.protocol import CallFailure, CsmsCallError, CsmsConnection
from workers.ocpp16.txqueue import db

log = logging.getLogger(__name__)

State = OutboxMessage.State
Lane = OutboxMessage.Lane
IDLE_CHECK_S = 5.0
MAX_SOON = 100  # in-memory messages kept while offline; older ones are stale anyway

Answered = Callable[[Any, Any], Awaitable[None] | None]  # (request, result) after a CALLRESULT


def _add(action: str, payload: Payload) -> int:
    return OutboxMessage.objects.create(action=action, payload=payload, lane=Lane.OTHER).pk


def _head() -> OutboxMessage | None:
    return OutboxMessage.objects.filter(lane=Lane.OTHER, state=State.PENDING).order_by("id").first()


def _delivered(row_id: int, response: dict[str, Any]) -> None:
    OutboxMessage.objects.filter(pk=row_id).update(state=State.DELIVERED, response=response,
                                                   delivered_at=timezone.now())


def _failed(row_id: int, error: str, attempts: int, retry_interval_s: float) -> bool:
    with transaction.atomic():
        row = OutboxMessage.objects.get(pk=row_id)
        row.attempts += 1
        row.response = {"error": error[:500]}
        give_up = row.attempts >= attempts
        if give_up:
            row.state = State.FAILED
        else:
            row.next_attempt_at = timezone.now() + timedelta(seconds=retry_interval_s * row.attempts)
        row.save(update_fields=["attempts", "response", "state", "next_attempt_at"])
    return give_up


class Notices:
    """The other lane; `run(connection)` delivers while that connection is up."""

    def __init__(self, attempts: Callable[[], int], retry_interval_s: Callable[[], float]) -> None:
        self._attempts = attempts
        self._retry_interval_s = retry_interval_s
        self._soon: list[tuple[Any, Answered | None]] = []
        self._wake = asyncio.Event()

    def send_soon(self, request: Any, on_answer: Answered | None = None) -> None:
        """Send `request` (an `ocpp.v16.call.<Action>`) as soon as the link allows;
        `on_answer(request, result)` runs after its CALLRESULT."""
        self._soon.append((request, on_answer))
        del self._soon[:-MAX_SOON]
        self._wake.set()

    async def queue_persisted(self, action: str, payload: Payload) -> None:
        """Store the message (wire JSON, camelCase) so it is sent even after a reboot."""
        row_id = await db(_add, action, payload)
        log.info("%s #%s queued", action, row_id)
        self._wake.set()

    async def waiting(self) -> bool:
        """True while a persisted message waits to be sent or answered (a stop drains them);
        wakes the sender, so a row written by another process is looked at now."""
        self._wake.set()
        return bool(self._soon) or await db(_head) is not None

    async def run(self, connection: CsmsConnection) -> None:
        while True:
            self._wake.clear()
            if self._soon:
                request, on_answer = self._soon.pop(0)
                await self._send_now(connection, request, on_answer)
                continue
            head = await db(_head)
            if head is None:
                await self._nap(IDLE_CHECK_S)
                continue
            due = head.next_attempt_at
            wait_s = 0.0 if due is None else (due - timezone.now()).total_seconds()
            if wait_s > 0:
                await self._nap(wait_s)
                continue
            await self._deliver(connection, head)

    async def _nap(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _send_now(self, connection: CsmsConnection, request: Any, on_answer: Answered | None) -> None:
        try:
            result = await connection.call(request)
        except CsmsCallError as error:
            if error.failure is CallFailure.OFFLINE:
                self._soon.insert(0, (request, on_answer))
                raise
            log.warning("%s failed: %s", type(request).__name__, error)
            return
        if on_answer is not None:
            outcome = on_answer(request, result)
            if outcome is not None:
                await outcome

    async def _deliver(self, connection: CsmsConnection, head: OutboxMessage) -> None:
        try:
            request = to_call(head.action, head.payload)
        except TypeError as error:
            log.error("%s #%s is malformed and is dropped: %s", head.action, head.pk, error)
            await db(_failed, head.pk, f"malformed: {error}", 1, 0)
            return
        try:
            result = await connection.call(request)
        except CsmsCallError as error:
            if error.failure is CallFailure.OFFLINE:
                raise
            given_up = await db(_failed, head.pk, str(error), self._attempts(), self._retry_interval_s())
            log.warning("%s #%s failed (%s)%s", head.action, head.pk, error, "; given up" if given_up else "")
            return
        await db(_delivered, head.pk, dataclasses.asdict(result))
        log.info("%s #%s delivered", head.action, head.pk)
