"""ReserveNow, CancelReservation (OCPP 1.6 §5.13, §5.1), answered by the reservation keeper
(workers/ocpp16/reservations.py): a database write and a few bus reads, well within what the
receive loop may wait. The StatusNotification (Reserved, or Available again) follows from
smartw's connector state, as every status does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ocpp.exceptions import FormatViolationError
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, CancelReservationStatus

from bus.messages import ReservationHold
from workers.ocpp16.handlers.base import HandlerBase


def expiry(text: str) -> datetime:
    """expiryDate as an aware UTC time (a time without zone is UTC); the schema does not check
    the format, so a date that does not parse is a FormationViolation (1.6 spelling on the wire)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FormatViolationError(
            description=f"expiryDate {text[:40]!r} is not an ISO 8601 date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class ReservationHandlers(HandlerBase):
    @on(Action.reserve_now)
    async def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int,
                             parent_id_tag: str | None = None, **_: Any) -> call_result.ReserveNow:
        hold = ReservationHold(reservation_id=reservation_id, connector_id=connector_id, id_tag=id_tag,
                               parent_id_tag=parent_id_tag or None, expires_at=expiry(expiry_date))
        return call_result.ReserveNow(status=await self.ctx.reservations.reserve(hold))

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id: int, **_: Any) -> call_result.CancelReservation:
        cancelled = await self.ctx.reservations.cancel(reservation_id)
        return call_result.CancelReservation(
            status=CancelReservationStatus.accepted if cancelled else CancelReservationStatus.rejected)
