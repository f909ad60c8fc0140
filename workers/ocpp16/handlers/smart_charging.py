"""SetChargingProfile, GetCompositeSchedule, ClearChargingProfile (OCPP 1.6 §5.16, §5.7, §5.5)."""

from __future__ import annotations

from workers.ocpp16.handlers.base import HandlerBase


class SmartChargingHandlers(HandlerBase):
    pass
