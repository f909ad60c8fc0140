"""InstallCertificate, DeleteCertificate, GetInstalledCertificateIds, CertificateSigned
(Security Whitepaper M03-M05, A02)."""

from __future__ import annotations

from workers.ocpp16.handlers.base import HandlerBase


class SecurityHandlers(HandlerBase):
    pass
