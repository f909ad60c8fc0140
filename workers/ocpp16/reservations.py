"""Reservations (OCPP 1.6 §3.11, §5.1, §5.13; ocpp16.md §2.16): kept, published and ended.

ocpp16 owns them: each is a row of the table `Reservation` (so a restart of ocpp16, or a power
cut, keeps it) and an entry of the bus key contract.RESERVATIONS, which smartw reads to show
the connector Reserved and to refuse other idTags (workers/smartw/reservations.py). Whether a
ReserveNow is accepted is decided from smartw's published state (reservation_rules.py); the same
reservationId replaces the reservation in force (its row is updated).

A reservation ends, and its row records why (`EndReason`):
- used: a session started with it: smartw's SessionStarted names it (reservation_id), and its
  StartTransaction carries it as reservationId (payloads.py);
- expired: at its expiryDate; smartw also stops honouring it at that moment by itself, so its
  connector turns Available then even if ocpp16 is down;
- cancelled: CancelReservation;
- faulted / unavailable: its connector became Faulted or Unavailable (connector 0's reservations:
  the station did).
The streams are read with consumer groups (nothing is missed while ocpp16 restarts); an event
older than the reservation it would end is ignored, so a replayed one cannot end a newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

from django.db import DatabaseError
from ocpp.v16.enums import ReservationStatus

from bus import Bus, contract
from bus.enums import ConnectorStatus
from bus.messages import ReservationHold, Reservations, SessionStarted, utcnow
from bus.tasks import run_all
from webapp.station.models import Reservation
from workers.ocpp16 import config_keys as keys
from workers.ocpp16.config_keys import ConfigurationStore
from workers.ocpp16.reservation_rules import ANY_CONNECTOR, StationView, decide
from workers.ocpp16.txqueue import db

log = logging.getLogger(__name__)

GROUP = "ocpp16.reservations"  # its own consumer groups: the session recorder and status reporter keep theirs
CONSUMER = "ocpp16"
ENDING_STATUSES = {ConnectorStatus.FAULTED: "faulted", ConnectorStatus.UNAVAILABLE: "unavailable"}


class EndReason(StrEnum):
    """Why a reservation ended (Reservation.end_reason)."""

    USED = "used"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAULTED = "faulted"
    UNAVAILABLE = "unavailable"


# ---- the table (synchronous ORM code, run through txqueue.db) --------------------------------


def _in_force() -> list[tuple[ReservationHold, datetime]]:
    rows = Reservation.objects.filter(ended_at__isnull=True).order_by("created_at")
    return [(ReservationHold(reservation_id=row.reservation_id, connector_id=row.connector_id,
                             id_tag=row.id_tag, parent_id_tag=row.parent_id_tag or None,
                             expires_at=row.expiry_date.astimezone(UTC)), row.created_at)
            for row in rows]


def _save(hold: ReservationHold) -> None:
    Reservation.objects.update_or_create(reservation_id=hold.reservation_id, defaults={
        "connector_id": hold.connector_id, "id_tag": hold.id_tag, "parent_id_tag": hold.parent_id_tag or "",
        "expiry_date": hold.expires_at, "ended_at": None, "end_reason": ""})


def _end(reservation_id: int, reason: EndReason) -> None:
    Reservation.objects.filter(reservation_id=reservation_id, ended_at__isnull=True).update(
        ended_at=utcnow(), end_reason=reason.value)


class ReservationKeeper:
    """The reservations in force: ReserveNow / CancelReservation (handlers/reservation.py) and
    their ends. A feature with background work (`run`)."""

    def __init__(self, bus: Bus, config: ConfigurationStore, connector_ids: tuple[int, ...],
                 now: Callable[[], datetime] = utcnow) -> None:
        self._bus = bus
        self._config = config
        self._connector_ids = connector_ids
        self._now = now
        self._holds: dict[int, ReservationHold] = {}
        self._since: dict[int, datetime] = {}  # when each was accepted: older events never end it
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()  # one change at a time: each answer sees the previous one
        self._loaded = asyncio.Event()

    # ---- the CSMS's requests ---------------------------------------------------------------

    async def reserve(self, hold: ReservationHold) -> ReservationStatus:
        """ReserveNow: the answer; an accepted reservation is stored, then published."""
        await self._loaded.wait()
        async with self._lock:
            others = [other for other in self._holds.values() if other.reservation_id != hold.reservation_id]
            status = decide(hold, await self._view(), others, now=self._now(),
                            zero_supported=self._config.get(keys.RESERVE_CONNECTOR_ZERO_SUPPORTED))
            if status is ReservationStatus.accepted:
                try:
                    await db(_save, hold)
                except DatabaseError as error:
                    log.error("reservation %s not stored (%s): Rejected", hold.reservation_id, error)
                    return ReservationStatus.rejected
                self._holds[hold.reservation_id] = hold
                self._since[hold.reservation_id] = self._now()
                await self._publish()
        log.info("ReserveNow %s: connector %s for %s until %s: %s", hold.reservation_id, hold.connector_id,
                 hold.id_tag, hold.expires_at.isoformat(), status)
        return status

    async def cancel(self, reservation_id: int) -> bool:
        """CancelReservation: True if that reservation was in force (it ends now)."""
        await self._loaded.wait()
        async with self._lock:
            if reservation_id not in self._holds:
                log.info("CancelReservation %s: no such reservation in force", reservation_id)
                return False
            await self._end(reservation_id, EndReason.CANCELLED)
        return True

    # ---- background work -------------------------------------------------------------------

    async def run(self) -> None:
        """Load the reservations in force, publish them, then end each when its time comes."""
        for hold, since in await db(_in_force):
            self._holds[hold.reservation_id] = hold
            self._since[hold.reservation_id] = since
        async with self._lock:
            await self._publish()
        self._loaded.set()
        log.info("%d reservation(s) in force", len(self._holds))
        await run_all(self._expire(), self._follow_sessions(), self._follow_connectors(),
                      self._follow_station())  # one failing cancels the others

    async def _expire(self) -> None:
        while True:
            self._changed.clear()
            async with self._lock:
                now = self._now()
                for hold in [h for h in self._holds.values() if not h.active(now)]:
                    await self._end(hold.reservation_id, EndReason.EXPIRED)
                next_expiry = min((h.expires_at for h in self._holds.values()), default=None)
                wait_s = None if next_expiry is None else (next_expiry - now).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait_s)

    async def _follow_sessions(self) -> None:
        async for delivery in self._bus.consume(contract.SESSIONS, GROUP, CONSUMER):
            if delivery is None:
                continue
            event = delivery.message
            if isinstance(event, SessionStarted) and event.reservation_id is not None:
                await self._end_if_older(event.reservation_id, event.at, EndReason.USED)
            await delivery.ack()

    async def _follow_connectors(self) -> None:
        async for delivery in self._bus.consume(contract.CONNECTOR_CHANGES, GROUP, CONSUMER):
            if delivery is None:
                continue
            state = delivery.message
            if state.status in ENDING_STATUSES:
                await self._end_on(state.connector_id, EndReason(ENDING_STATUSES[state.status]), state.at)
            await delivery.ack()

    async def _follow_station(self) -> None:
        async for delivery in self._bus.consume(contract.STATION_CHANGES, GROUP, CONSUMER):
            if delivery is None:
                continue
            state = delivery.message
            if state.status in ENDING_STATUSES:
                await self._end_on(ANY_CONNECTOR, EndReason(ENDING_STATUSES[state.status]), state.at)
            await delivery.ack()

    async def _end_on(self, connector_id: int, reason: EndReason, at: datetime) -> None:
        for hold in [h for h in self._holds.values() if h.connector_id == connector_id]:
            await self._end_if_older(hold.reservation_id, at, reason)

    async def _end_if_older(self, reservation_id: int, at: datetime, reason: EndReason) -> None:
        async with self._lock:
            since = self._since.get(reservation_id)
            if since is not None and at >= since:
                await self._end(reservation_id, reason)

    # ---- shared steps (under the lock) -------------------------------------------------------

    async def _end(self, reservation_id: int, reason: EndReason) -> None:
        """Drop it from the bus first (smartw stops honouring it at once), then record the end. A
        database failure is logged; the row then still looks in force to the next start of
        ocpp16, which honours it again until its expiry."""
        hold = self._holds.pop(reservation_id)
        self._since.pop(reservation_id, None)
        await self._publish()
        try:
            await db(_end, reservation_id, reason)
        except DatabaseError as error:
            log.error("end of reservation %s (%s) not stored: %s", reservation_id, reason, error)
        log.info("reservation %s on connector %s for %s ended: %s", reservation_id, hold.connector_id,
                 hold.id_tag, reason)

    async def _publish(self) -> None:
        reservations = Reservations(holds=tuple(self._holds.values()))
        ttl_s = reservations.ttl_s(self._now())
        if ttl_s is None:
            await self._bus.delete(contract.RESERVATIONS)
        else:
            await self._bus.set(contract.RESERVATIONS, reservations, ttl_s=ttl_s)
        self._changed.set()

    async def _view(self) -> StationView:
        """smartw's published state; a value that breaks the contract counts as not published."""
        reads = await self._bus.get_many([(contract.STATION, {}), *[
            (contract.CONNECTOR, {"connector_id": cid}) for cid in self._connector_ids]])
        for read in reads:
            if read.error is not None:
                log.error("%s on the bus is unreadable: %s", read.name, read.error)
        connectors = {cid: read.value for cid, read in zip(self._connector_ids, reads[1:], strict=True)}
        return StationView(reads[0].value, connectors)
