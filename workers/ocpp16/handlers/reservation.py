"""ReserveNow, CancelReservation (OCPP 1.6 §5.13, §5.1)."""

from __future__ import annotations

from workers.ocpp16.handlers.base import HandlerBase


class ReservationHandlers(HandlerBase):
    pass
