"""ChangeAvailability, Reset, UnlockConnector, DataTransfer (OCPP 1.6 §5.2, §5.14, §5.18, §5.6)."""

from __future__ import annotations

from workers.ocpp16.handlers.base import HandlerBase


class CoreHandlers(HandlerBase):
    pass
