"""InstallCertificate, DeleteCertificate, GetInstalledCertificateIds, CertificateSigned
(Security Whitepaper ed.2 M03-M05, A02), answered by `ctx.security` (security/feature.py).

The @after hooks tell the feature the answer left, so a security event caused by the request
(InvalidCentralSystemCertificate, InvalidChargePointCertificate) follows its CALLRESULT.
"""

from __future__ import annotations

from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, GetInstalledCertificateStatus

from workers.ocpp16.handlers.base import HandlerBase


class SecurityHandlers(HandlerBase):
    @on(Action.install_certificate)
    async def on_install_certificate(self, certificate_type: str, certificate: str, call_unique_id: str,
                                     **_: Any) -> call_result.InstallCertificate:
        status = await self.ctx.security.install_certificate(certificate_type, certificate, call_unique_id)
        return call_result.InstallCertificate(status=status)

    @after(Action.install_certificate)
    def after_install_certificate(self, call_unique_id: str, **_: Any) -> None:
        self.ctx.security.answered(call_unique_id)

    @on(Action.delete_certificate)
    async def on_delete_certificate(self, certificate_hash_data: dict[str, Any],
                                    **_: Any) -> call_result.DeleteCertificate:
        return call_result.DeleteCertificate(
            status=await self.ctx.security.delete_certificate(certificate_hash_data))

    @on(Action.get_installed_certificate_ids)
    async def on_get_installed_certificate_ids(self, certificate_type: str,
                                               **_: Any) -> call_result.GetInstalledCertificateIds:
        ids = await self.ctx.security.installed_certificate_ids(certificate_type)
        if not ids:
            return call_result.GetInstalledCertificateIds(status=GetInstalledCertificateStatus.not_found)
        return call_result.GetInstalledCertificateIds(status=GetInstalledCertificateStatus.accepted,
                                                      certificate_hash_data=ids)

    @on(Action.certificate_signed)
    async def on_certificate_signed(self, certificate_chain: str, call_unique_id: str,
                                    **_: Any) -> call_result.CertificateSigned:
        status = await self.ctx.security.certificate_signed(certificate_chain, call_unique_id)
        return call_result.CertificateSigned(status=status)

    @after(Action.certificate_signed)
    def after_certificate_signed(self, call_unique_id: str, **_: Any) -> None:
        self.ctx.security.answered(call_unique_id)
