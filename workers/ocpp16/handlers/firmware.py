"""UpdateFirmware, GetDiagnostics, SignedUpdateFirmware, GetLog (OCPP 1.6 §5.19, §5.9;
Security Whitepaper L01, N01)."""

from __future__ import annotations

from workers.ocpp16.handlers.base import HandlerBase


class FirmwareHandlers(HandlerBase):
    pass
