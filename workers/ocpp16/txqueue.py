"""The persisted, strictly ordered queue of transaction messages (OCPP 1.6 §3.7, §4.8; errata 3.18).

StartTransaction, periodic MeterValues and StopTransaction are rows of `OutboxMessage`, sent
one at a time in `id` order, so a CSMS outage or a restart of ocpp16 loses nothing and keeps
the order. A message of a session whose transactionId is not known yet simply waits behind its
StartTransaction; the transactionId is filled in when the message is read for sending, from the
session's `Transaction` row that StartTransaction.conf updates (one place holds it, so a restart
at any moment finds it). A StartTransaction that can never be delivered leaves the later
messages with transactionId -1, as errata 3.18 asks.

Failures (timeout, CALLERROR) are retried after `retry_interval * attempts so far` until
`attempts` is reached; then the message is kept as FAILED and the queue moves on. A delivered
message is never sent again.

Why a `Window`: a replay after an outage (thousands of messages) must not cost several ORM
queries per message. The sender reads the next WINDOW_ROWS pending messages in one query and
settles each with one statement (`delivered`: one UPDATE, committed before the next message
goes out, so a kill -9 at any moment repeats at most the one message whose answer had not been
recorded yet). Every method here is synchronous ORM code: call it through `db()`, which runs it
on Django's one sync thread (writes are serialised, no SQLite contention).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
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
WINDOW_ROWS = 100  # pending messages read in one query
State = OutboxMessage.State
Lane = OutboxMessage.Lane


async def db(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ORM code from async code, on Django's single sync thread."""
    return await sync_to_async(fn, thread_sensitive=True)(*args, **kwargs)


@dataclass(frozen=True)
class Outgoing:
    """A pending message as read from the queue (transactionId filled in where it was known)."""

    row_id: int
    action: str
    payload: Payload
    session_id: str
    attempts: int
    not_before: datetime | None

    @property
    def lacks_transaction_id(self) -> bool:
        return needs_transaction_id(self.action, self.session_id) and self.payload.get(TRANSACTION_ID) is None

    def with_transaction_id(self, transaction_id: int) -> Outgoing:
        return replace(self, payload={**self.payload, TRANSACTION_ID: transaction_id})

    def wait_s(self, now: datetime) -> float:
        return 0.0 if self.not_before is None else max(0.0, (self.not_before - now).total_seconds())


class Window:
    """The next pending messages, in order. A StartTransaction answered (or given up) while the
    window is sent is noted here (`delivered`, `given_up`), so its session's later messages in
    the window get the transactionId without reading the database again."""

    def __init__(self, messages: Iterable[Outgoing]) -> None:
        self._messages = deque(messages)
        self._settled: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._messages)

    def next(self) -> Outgoing | None:
        """The next message to send, ready for the wire; None when the window is used up."""
        if not self._messages:
            return None
        message = self._messages[0]
        if not message.lacks_transaction_id:
            return message
        known = self._settled.get(message.session_id)
        if known is None:
            log.error("%s #%s: no StartTransaction queued for session %s; sending transactionId %s",
                      message.action, message.row_id, message.session_id, UNDELIVERABLE_TRANSACTION_ID)
            known = UNDELIVERABLE_TRANSACTION_ID
        return message.with_transaction_id(known)

    def delivered(self, message: Outgoing, transaction_id: int | None) -> None:
        """`message` (the one `next()` gave) was answered; a StartTransaction with the
        transactionId its session's later messages carry."""
        self._messages.popleft()
        if transaction_id is not None:
            self._settled[message.session_id] = transaction_id

    def given_up(self, message: Outgoing) -> None:
        """`message` will never be delivered; after a StartTransaction, its session's later
        messages carry transactionId -1 (errata 3.18)."""
        self._messages.popleft()
        if message.action == Action.start_transaction:
            self._settled[message.session_id] = UNDELIVERABLE_TRANSACTION_ID


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
        return self._known_transaction_ids([session_id]).get(session_id)

    @staticmethod
    def _known_transaction_ids(session_ids: Iterable[str]) -> dict[str, int]:
        """The transactionId of each session that has one: the CSMS's, or -1 when its
        StartTransaction was given up; sessions still waiting for theirs are left out."""
        wanted = set(session_ids)
        if not wanted:
            return {}
        known = dict(Transaction.objects.filter(session_id__in=wanted, transaction_id__isnull=False)
                     .values_list("session_id", "transaction_id"))
        given_up = (OutboxMessage.objects.filter(session_id__in=wanted - known.keys(), state=State.FAILED,
                                                 action=Action.start_transaction)
                    .values_list("session_id", flat=True))
        known.update(dict.fromkeys(given_up, UNDELIVERABLE_TRANSACTION_ID))
        return known

    # ---- reading --------------------------------------------------------------------------

    def running(self) -> list[Transaction]:
        return list(Transaction.objects.filter(stopped_at__isnull=True).order_by("started_at"))

    def pending_count(self) -> int:
        return OutboxMessage.objects.filter(lane=Lane.TRANSACTION, state=State.PENDING).count()

    def window(self, limit: int = WINDOW_ROWS) -> Window:
        """The oldest `limit` pending messages in one query; by order, each one's
        StartTransaction is settled already or comes before it in the window."""
        rows = (OutboxMessage.objects.filter(lane=Lane.TRANSACTION, state=State.PENDING).order_by("id")
                .values_list("id", "action", "payload", "session_id", "attempts", "next_attempt_at")[:limit])
        messages = [Outgoing(*row) for row in rows]
        known = self._known_transaction_ids(m.session_id for m in messages if m.lacks_transaction_id)
        return Window(m.with_transaction_id(known[m.session_id])
                      if m.lacks_transaction_id and m.session_id in known else m for m in messages)

    # ---- outcomes --------------------------------------------------------------------------

    def delivered(self, message: Outgoing, response: dict[str, Any]) -> Transaction | None:
        """Mark sent (one UPDATE); for StartTransaction also store the transactionId. Returns
        that Transaction (None for other actions)."""
        sent = OutboxMessage.objects.filter(pk=message.row_id)
        if message.action != Action.start_transaction:
            sent.update(state=State.DELIVERED, response=response, delivered_at=timezone.now())
            return None
        with transaction.atomic():
            sent.update(state=State.DELIVERED, response=response, delivered_at=timezone.now())
            tx = Transaction.objects.get(session_id=message.session_id)
            tx.transaction_id = int(response["transaction_id"])
            tx.save(update_fields=["transaction_id"])
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
        return give_up
