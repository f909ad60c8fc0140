"""Getting the station's certificate signed (Security Whitepaper ed.2 A02, A03).

A02: the CSMS asks (ExtendedTriggerMessage SignChargePointCertificate; the trigger handler
calls `request()` from its @after hook) -> new key pair, SignCertificate(csr) -> the CSMS's
CertificateSigned(chain) -> `accept()` checks it against the pending key (chain.py) and keeps
it (identity.py). A03: the station asks by itself when its certificate expires within
`RENEW_BEFORE` (checked by the security feature's housekeeping), at most once per
`RENEW_RETRY_AFTER` while no answer came.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.v16 import call
from ocpp.v16.enums import CertificateUse

from workers.ocpp16 import config_keys as keys
from workers.ocpp16.config_keys import ConfigurationStore
from workers.ocpp16.notices import Notices
from workers.ocpp16.security.certificates import CertificateStore, InvalidCertificate
from workers.ocpp16.security.chain import verify_station_chain
from workers.ocpp16.security.csr import build_csr, new_key
from workers.ocpp16.security.identity import StationIdentity

log = logging.getLogger(__name__)

RENEW_BEFORE = timedelta(days=30)  # A03: renew a certificate that expires within a month
RENEW_RETRY_AFTER = timedelta(days=1)  # ask again if no CertificateSigned came within a day


class CertificateSigning:
    def __init__(self, identity: StationIdentity, store: CertificateStore, notices: Notices,
                 config: ConfigurationStore, common_name: Callable[[], str],
                 clock: Callable[[], datetime] | None = None) -> None:
        self._identity = identity
        self._store = store
        self._notices = notices
        self._config = config
        self._common_name = common_name
        self._clock = clock or (lambda: datetime.now(UTC))
        self._requested_at: datetime | None = None

    async def request(self) -> None:
        """New key pair, then SignCertificate with its CSR (sent as soon as the link allows)."""
        key = new_key()
        try:
            self._identity.save_pending_key(key)
        except OSError as error:
            log.error("cannot keep a new key (%s): no certificate signing request made", error)
            return
        csr = build_csr(key, common_name=self._common_name(), organization=self._config.get(keys.CPO_NAME))
        self._requested_at = self._clock()
        log.info("certificate signing request made; SignCertificate queued")
        self._notices.send_soon(call.SignCertificate(csr=csr), self._answered)

    @staticmethod
    def _answered(_request: Any, result: Any) -> None:
        log.info("SignCertificate: %s", result.status)

    async def accept(self, chain_pem: str) -> bool:
        """Check and keep the chain; True when it is in use at once (else from its start date).
        InvalidCertificate when it must be discarded."""
        max_chars = self._config.get(keys.CERTIFICATE_SIGNED_MAX_CHAIN_SIZE)
        if len(chain_pem) > max_chars:
            raise InvalidCertificate(f"the chain has {len(chain_pem)} characters (at most {max_chars})")
        key = self._identity.pending_key()
        if key is None:
            raise InvalidCertificate("no certificate signing request is pending")
        roots = await self._store.installed(CertificateUse.central_system_root_certificate)
        verify_station_chain(chain_pem, key=key, common_name=self._common_name(),
                             roots=[item.certificate for item in roots], now=self._clock())
        self._requested_at = None
        return self._identity.install(chain_pem, key, self._clock())

    async def renew_if_due(self) -> bool:
        """A03: ask for a new certificate when the one in use expires soon; True if asked."""
        leaf = self._identity.certificate()
        now = self._clock()
        if leaf is None or leaf.not_valid_after_utc - now > RENEW_BEFORE or self._identity.upcoming_from():
            return False
        if self._requested_at is not None and now - self._requested_at < RENEW_RETRY_AFTER:
            return False
        log.info("the charge point certificate expires on %s: asking for a new one",
                 f"{leaf.not_valid_after_utc:%Y-%m-%d}")
        await self.request()
        return True
