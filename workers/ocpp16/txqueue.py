"""The persisted, strictly ordered queue of transaction messages (OCPP 1.6 §3.7, §4.8; errata 3.18).

StartTransaction, periodic MeterValues and StopTransaction are rows of `OutboxMessage`, sent
one at a time in `id` order, so a CSMS outage or a restart of ocpp16 loses nothing and keeps
the order. A message of a session whose transactionId is not known yet simply waits behind its
StartTransaction; when StartTransaction.conf arrives, its transactionId is written into the
session's later queued messages. A StartTransaction that can never be delivered leaves the
later messages with transactionId -1, as errata 3.18 asks.

Failures (timeout, CALLERROR) are retried after `retry_interval * attempts so far` until
`attempts` is reached; then the message is kept as FAILED and the queue moves on. A delivered
message is never sent again. Every method here is synchronous ORM code: call it through
`db()`, which runs it on Django's one sync thread (writes are serialised, no SQLite contention).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone
from ocpp.v16.enums import Action

from bus.messages import SessionStarted, SessionStopped
from webapp.station.models import OutboxMessage, Transaction
from workers.ocpp16.payloads import TRANSACTION_ID, Payload, needs_transaction_id, wh

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
UNDELIVERABLE_TRANSACTION_ID = -1  # errata 3.18: the StartTransaction never got through
State = OutboxMessage.State
Lane = OutboxMessage.Lane


async def db(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ORM code from async code, on Django's single sync thread."""
    return await sync_to_async(fn, thread_sensitive=True)(*args, **kwargs)


@dataclass(frozen=True)
class Outgoing:
    """The head of the queue, ready to send (transactionId filled in)."""

    row_id: int
    action: str
    payload: Payload
    session_id: str
    attempts: int
    not_before: datetime | None

    def wait_s(self, now: datetime) -> float:
        return 0.0 if self.not_before is None else max(0.0, (self.not_before - now).total_seconds())


class TransactionQueue:
    """Transactions and their queued messages in the database (ocpp16 is the only writer)."""

    def __init__(self, attempts: int, retry_interval_s: float) -> None:
        self.attempts = attempts
        self.retry_interval_s = retry_interval_s

    # ---- recording bus events ----------------------------------------------------------

    def record_start(self, event: SessionStarted, payload: Payload, problem: str | None) -> bool:
        """A Transaction row plus its StartTransaction; False if the session is already known
        (the event was redelivered after a crash). `problem` = the payload is invalid: the row
        is kept as FAILED so it is visible, and never blocks the queue."""
        with transaction.atomic():
            if Transaction.objects.filter(session_id=event.session_id).exists():
                log.info("session %s already recorded; redelivered event ignored", event.session_id)
                return False
            Transaction.objects.create(session_id=event.session_id, connector_id=event.connector_id,
                                       id_tag=event.id_tag[:20], meter_start_wh=wh(event.meter_start_wh),
                                       started_at=event.at)
            self._add(Action.start_transaction, payload, event.session_id, problem)
        return True

    def record_stop(self, event: SessionStopped, payload: Payload, problem: str | None) -> Transaction | None:
        """Mark the Transaction stopped and queue its StopTransaction; None if the session is
        unknown or already stopped (nothing to send)."""
        with transaction.atomic():
            tx = Transaction.objects.filter(session_id=event.session_id).first()
            if tx is None:
                log.error("SessionStopped for unknown session %s on connector %s: no StopTransaction",
                          event.session_id, event.connector_id)
                return None
            if tx.stopped_at is not None:
                log.info("session %s already stopped; redelivered event ignored", event.session_id)
                return None
            tx.meter_stop_wh = wh(event.meter_stop_wh)
            tx.stopped_at = event.at
            tx.stop_reason = str(event.reason)
            tx.save(update_fields=["meter_stop_wh", "stopped_at", "stop_reason"])
            self._add(Action.stop_transaction, payload, event.session_id, problem)
        return tx

    def add_meter_values(self, session_id: str, payload: Payload | None,
                         sampled_at: datetime | None = None) -> bool:
        """Queue MeterValues if the transaction still runs (never after its StopTransaction);
        False if it does not. `payload` None: nothing to send, only `sampled_at` is recorded.

        `sampled_at` (a periodic sample's boundary) is stored with the message in one database
        transaction, so a restarted ocpp16 neither repeats nor skips a boundary."""
        with transaction.atomic():
            tx = Transaction.objects.filter(session_id=session_id, stopped_at__isnull=True).first()
            if tx is None:
                return False
            if payload is not None:
                self._add(Action.meter_values, payload, session_id, None)
            if sampled_at is not None:
                tx.last_sampled_at = sampled_at
                tx.save(update_fields=["last_sampled_at"])
        return True

    def _add(self, action: str, payload: Payload, session_id: str, problem: str | None) -> None:
        body = dict(payload)
        if needs_transaction_id(action, session_id) and body.get(TRANSACTION_ID) is None:
            known = self._known_transaction_id(session_id)
            if known is not None:
                body[TRANSACTION_ID] = known
        if problem is not None:
            log.error("%s of session %s cannot be sent (kept as failed): %s", action, session_id, problem)
        OutboxMessage.objects.create(action=action, payload=body, session_id=session_id,
                                     state=State.FAILED if problem else State.PENDING,
                                     response={"error": problem} if problem else None)

    def _known_transaction_id(self, session_id: str) -> int | None:
        tx = Transaction.objects.filter(session_id=session_id).first()
        if tx is not None and tx.transaction_id is not None:
            return tx.transaction_id
        start_failed = OutboxMessage.objects.filter(session_id=session_id, action=Action.start_transaction,
                                                    state=State.FAILED).exists()
        return UNDELIVERABLE_TRANSACTION_ID if start_failed else None

    # ---- reading --------------------------------------------------------------------------

    def running(self) -> list[Transaction]:
        return list(Transaction.objects.filter(stopped_at__isnull=True).order_by("started_at"))

    def pending_count(self) -> int:
        return OutboxMessage.objects.filter(lane=Lane.TRANSACTION, state=State.PENDING).count()

    def head(self) -> Outgoing | None:
        """The oldest pending message; by order its StartTransaction is already settled."""
        row = OutboxMessage.objects.filter(lane=Lane.TRANSACTION, state=State.PENDING).order_by("id").first()
        if row is None:
            return None
        payload = dict(row.payload)
        if needs_transaction_id(row.action, row.session_id) and payload.get(TRANSACTION_ID) is None:
            known = self._known_transaction_id(row.session_id)
            if known is None:
                log.error("%s #%s: no StartTransaction queued for session %s; sending transactionId %s",
                          row.action, row.pk, row.session_id, UNDELIVERABLE_TRANSACTION_ID)
                known = UNDELIVERABLE_TRANSACTION_ID
            payload[TRANSACTION_ID] = known
        return Outgoing(row.pk, row.action, payload, row.session_id, row.attempts, row.next_attempt_at)

    # ---- outcomes --------------------------------------------------------------------------

    def delivered(self, row_id: int, response: dict[str, Any]) -> Transaction | None:
        """Mark sent; for StartTransaction store the transactionId and fill it into the session's
        later messages. Returns that Transaction (None for other actions)."""
        with transaction.atomic():
            row = OutboxMessage.objects.get(pk=row_id)
            row.state, row.response, row.delivered_at = State.DELIVERED, response, timezone.now()
            row.save(update_fields=["state", "response", "delivered_at"])
            if row.action != Action.start_transaction:
                return None
            tx = Transaction.objects.get(session_id=row.session_id)
            tx.transaction_id = int(response["transaction_id"])
            tx.save(update_fields=["transaction_id"])
            self._fill_transaction_id(row.session_id, tx.transaction_id)
        return tx

    def failed_attempt(self, row_id: int, error: str, *, final: bool = False) -> bool:
        """Count a failed attempt; True when the message is given up (kept as FAILED)."""
        with transaction.atomic():
            row = OutboxMessage.objects.get(pk=row_id)
            row.attempts += 1
            row.response = {"error": error[:500]}
            give_up = final or row.attempts >= self.attempts
            if give_up:
                row.state = State.FAILED
            else:
                row.next_attempt_at = timezone.now() + timedelta(seconds=self.retry_interval_s * row.attempts)
            row.save(update_fields=["attempts", "response", "state", "next_attempt_at"])
            if give_up and row.action == Action.start_transaction:
                self._fill_transaction_id(row.session_id, UNDELIVERABLE_TRANSACTION_ID)
        return give_up

    def _fill_transaction_id(self, session_id: str, transaction_id: int) -> None:
        later = OutboxMessage.objects.filter(session_id=session_id, state=State.PENDING).exclude(
            action=Action.start_transaction)
        for row in later:
            row.payload = {**row.payload, TRANSACTION_ID: transaction_id}
            row.save(update_fields=["payload"])
