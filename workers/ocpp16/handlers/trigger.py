"""TriggerMessage and ExtendedTriggerMessage (OCPP 1.6 §5.17; Security Whitepaper §3.3)."""

from __future__ import annotations

from workers.ocpp16.handlers.base import HandlerBase


class TriggerHandlers(HandlerBase):
    pass
