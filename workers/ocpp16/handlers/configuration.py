"""GetConfiguration / ChangeConfiguration (OCPP 1.6 §5.3, §5.8; config_keys.py)."""

from __future__ import annotations

from workers.ocpp16.handlers.base import HandlerBase


class ConfigurationHandlers(HandlerBase):
    pass
