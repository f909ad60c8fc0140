"""`ctx.security`: the one object the service, the handlers and other features use for security.

For others: `await ctx.security.event(type, tech_info)` (security log + SecurityEventNotification),
`await ctx.security.request_certificate_signing()` (A02, from ExtendedTriggerMessage's @after).
For the service: `secured(base)` (settings of the next connection), `use_link(link)`, and the
link observer calls. For the handlers: the certificate operations (M03-M05, A02).

Events that answer a CSMS request (InvalidCentralSystemCertificate after a refused
InstallCertificate, InvalidChargePointCertificate after a refused CertificateSigned, OCTT
TC_077/TC_078) must follow that request's CALLRESULT: they wait for the handler's @after
(`answered(call id)`), at most `AFTER_ANSWER_MAX_S`, so none is lost if the answer never left.
Runs always: StartupOfTheDevice once per boot of the station computer (not per restart of
ocpp16), then certificate housekeeping (switch to a certificate whose validity began, A03
renewal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from django.db import DatabaseError
from ocpp.v16.enums import (
    CertificateSignedStatus,
    CertificateStatus,
    CertificateUse,
    DeleteCertificateStatus,
)

from workers.ocpp16 import config_keys as keys
from workers.ocpp16.persisted import read_state, write_state
from workers.ocpp16.security.certificates import (
    CertificateStore,
    HashData,
    InvalidCertificate,
    find_issuer,
    hash_data,
)
from workers.ocpp16.security.events import SecurityEventType, SecurityLog
from workers.ocpp16.security.identity import StationIdentity
from workers.ocpp16.security.profiles import SecurityProfile
from workers.ocpp16.security.signing import CertificateSigning
from workers.ocpp16.security.transport import TransportSecurity
from workers.ocpp16.wsconnect import Link, TransportError, TransportSettings

if TYPE_CHECKING:
    from workers.ocpp16.context import ChargePointContext

log = logging.getLogger(__name__)

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")  # changes at every boot of the computer
BOOT_STATE = "security_boot_id"
AFTER_ANSWER_MAX_S = 2.0
HOUSEKEEPING_S = 3600.0
CS_ROOT = CertificateUse.central_system_root_certificate


class AfterAnswer:
    """Work to run once the CALLRESULT of a given CSMS CALL has been sent."""

    def __init__(self) -> None:
        self._gates: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, call_id: str, work: Callable[[], Awaitable[None]]) -> None:
        gate = self._gates.setdefault(call_id, asyncio.Event())
        task = asyncio.get_running_loop().create_task(self._run(call_id, gate, work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def answered(self, call_id: str) -> None:
        gate = self._gates.get(call_id)
        if gate is not None:
            gate.set()

    async def _run(self, call_id: str, gate: asyncio.Event, work: Callable[[], Awaitable[None]]) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gate.wait(), AFTER_ANSWER_MAX_S)
        self._gates.pop(call_id, None)
        try:
            await work()
        except Exception:
            log.exception("work after the answer to %s failed", call_id)


class Security:
    def __init__(self, ctx: ChargePointContext, certificates_folder: Path) -> None:
        config = self._config = ctx.config
        self.log = SecurityLog(ctx.notices)
        self.store = CertificateStore(lambda: config.get(keys.CERTIFICATE_STORE_MAX_LENGTH))
        self.identity = StationIdentity(certificates_folder)
        # The CSMS URL and charge point id can change at run time (the configurator,
        # operator_config.py replaces ctx.settings): read them when needed, never keep a copy.
        self.signing = CertificateSigning(self.identity, self.store, ctx.notices, config,
                                          lambda: ctx.settings.charge_point_id)
        self.transport = TransportSecurity(
            config, self.store, self.identity, self.log,
            lambda: TransportSettings(ctx.settings.csms_url, ctx.settings.charge_point_id).uses_tls)
        self._after_answer = AfterAnswer()

    # ---- for everyone --------------------------------------------------------------------------

    async def event(self, event_type: SecurityEventType | str, tech_info: str = "") -> None:
        await self.log.record(event_type, tech_info)

    async def request_certificate_signing(self) -> None:
        await self.signing.request()

    # ---- for the service -----------------------------------------------------------------------

    def use_link(self, link: Link) -> None:
        self.transport.use_link(link)

    async def secured(self, base: TransportSettings) -> TransportSettings:
        return await self.transport.secured(base)

    async def link_opened(self) -> None:
        await self.transport.link_opened()

    async def link_failed(self, error: TransportError) -> None:
        await self.transport.link_failed(error)

    async def run(self) -> NoReturn:
        await self._startup_event()
        while True:
            client_certificate_in_use = self.transport.profile is SecurityProfile.TLS_CLIENT_CERTIFICATE
            if self.identity.promote_due() and client_certificate_in_use:
                self.transport.reopen("the new charge point certificate is valid now")
            await self.signing.renew_if_due()
            await asyncio.sleep(self._next_housekeeping_s())

    def _next_housekeeping_s(self) -> float:
        starts = self.identity.upcoming_from()
        if starts is None:
            return HOUSEKEEPING_S
        return min(HOUSEKEEPING_S, max(1.0, (starts - datetime.now(UTC)).total_seconds()))

    async def _startup_event(self) -> None:
        try:
            boot_id = BOOT_ID_FILE.read_text().strip()
        except OSError:
            boot_id = ""  # unknown: every start counts as a startup
        if boot_id and await read_state(BOOT_STATE) == boot_id:
            return
        await write_state(BOOT_STATE, boot_id or None)
        await self.event(SecurityEventType.STARTUP_OF_THE_DEVICE,
                         "station computer started" if boot_id else "ocpp16 started (boot not known)")

    # ---- for the handlers (Security Whitepaper M03-M05, A02) ----------------------------------

    def answered(self, call_id: str) -> None:
        """The CALLRESULT of `call_id` was sent (handlers' @after)."""
        self._after_answer.answered(call_id)

    async def install_certificate(self, use: str, pem: str, call_id: str) -> CertificateStatus:
        try:
            status, why = await self.store.install(use, pem)
        except InvalidCertificate as error:
            log.warning("InstallCertificate %s Rejected: %s", use, error)
            if use == CS_ROOT:
                event = partial(self.event, SecurityEventType.INVALID_CENTRAL_SYSTEM_CERTIFICATE,
                                f"InstallCertificate: {error}")
                self._after_answer.schedule(call_id, event)
            return CertificateStatus.rejected
        log.info("InstallCertificate %s %s%s", use, status, f": {why}" if why else "")
        self.transport.central_system_roots = len(await self.store.installed(CS_ROOT))
        return status

    async def delete_certificate(self, certificate_hash_data: dict[str, Any]) -> DeleteCertificateStatus:
        wanted = HashData.from_request(certificate_hash_data)
        if wanted in await self._station_certificate_names(wanted.hash_algorithm):
            log.warning("DeleteCertificate: the charge point certificate cannot be deleted this way")
            return DeleteCertificateStatus.failed
        matches = await self.store.find(wanted)
        if not matches:
            return DeleteCertificateStatus.not_found
        roots_left = [item for item in await self.store.installed(CS_ROOT) if item not in matches]
        deletes_a_root = any(item.use == CS_ROOT for item in matches)
        if self.transport.profile.needs_tls and deletes_a_root and not roots_left:
            log.warning("DeleteCertificate: the last CentralSystemRootCertificate is in use "
                        "(SecurityProfile %s)", self.transport.profile)
            return DeleteCertificateStatus.failed
        try:
            await self.store.remove(matches)
        except DatabaseError as error:
            log.error("DeleteCertificate failed: %s", error)
            return DeleteCertificateStatus.failed
        self.transport.central_system_roots = len(roots_left)
        log.info("DeleteCertificate: %d certificate(s) deleted", len(matches))
        return DeleteCertificateStatus.accepted

    async def _station_certificate_names(self, algorithm: str) -> list[HashData]:
        chain = self.identity.chain()
        if not chain:
            return []
        candidates = chain[1:] + [item.certificate for item in await self.store.installed()]
        return [hash_data(chain[0], find_issuer(chain[0], candidates), algorithm)]

    async def installed_certificate_ids(self, use: str) -> list[dict[str, str]]:
        return [data.to_wire() for data in await self.store.ids(use)]

    async def certificate_signed(self, chain_pem: str, call_id: str) -> CertificateSignedStatus:
        try:
            in_use = await self.signing.accept(chain_pem)
        except InvalidCertificate as error:
            log.warning("CertificateSigned Rejected: %s", error)
            self._after_answer.schedule(call_id, partial(
                self.event, SecurityEventType.INVALID_CHARGE_POINT_CERTIFICATE, str(error)))
            return CertificateSignedStatus.rejected
        except OSError as error:
            log.error("CertificateSigned Rejected: the certificate cannot be stored: %s", error)
            return CertificateSignedStatus.rejected
        log.info("CertificateSigned Accepted: the new charge point certificate is in use %s",
                 "now" if in_use else f"from {self.identity.upcoming_from():%Y-%m-%d %H:%M} UTC")
        if in_use and self.transport.profile is SecurityProfile.TLS_CLIENT_CERTIFICATE:
            self.transport.reopen("new charge point certificate")
        return CertificateSignedStatus.accepted
