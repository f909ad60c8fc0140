"""ClearCache, GetLocalListVersion, SendLocalList (OCPP 1.6 §5.4, §5.10, §5.15)."""

from __future__ import annotations

from workers.ocpp16.handlers.base import HandlerBase


class LocalAuthHandlers(HandlerBase):
    pass
