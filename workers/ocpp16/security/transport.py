"""How the security profile shapes the CSMS connection (Security Whitepaper ed.2 §2, A01, A05).

- `secured(base)`: the settings of the next connection attempt: Basic password (profiles 1, 2),
  TLS context (wss://: profiles 2, 3 trust only the installed CentralSystemRootCertificates),
  client certificate (profile 3). A profile that cannot work with this station (profile 2 on
  a ws:// URL, no root, no certificate) is refused with a clear error, never downgraded.
- Guards: AuthorizationKey must be a usable password; SecurityProfile only goes up, and only
  when its prerequisites are there (profiles.py). Listeners: a change is logged as
  ReconfigurationOfSecurityParameters and the link reopens with it (A01, A05).
- As the link's observer: a refused login (401), an invalid CSMS certificate or TLS version
  become security events (the first of each streak of failures, not every retry); a raised
  profile that fails `FALLBACK_AFTER_FAILURES` attempts in a row (or keeps failing for
  `FALLBACK_AFTER_S`) falls back to the last profile that connected (A05 "SHOULD fall back"),
  which is remembered in OcppState so a restart in between changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from ocpp.v16.enums import CertificateUse

from workers.ocpp16 import config_keys as keys
from workers.ocpp16.config_keys import ConfigKey, ConfigurationStore
from workers.ocpp16.persisted import change_configuration, read_state, write_state
from workers.ocpp16.security.certificates import CertificateStore
from workers.ocpp16.security.events import SecurityEventType, SecurityLog
from workers.ocpp16.security.identity import StationIdentity
from workers.ocpp16.security.profiles import (
    Prerequisites,
    SecurityProfile,
    check_authorization_key,
    check_profile_change,
    has_valid_key,
    password_bytes,
)
from workers.ocpp16.security.tls import NoTrustAnchor, client_context
from workers.ocpp16.wsconnect import FailureKind, Link, TransportError, TransportSettings

log = logging.getLogger(__name__)

FALLBACK_AFTER_FAILURES = 5  # failed attempts in a row under a raised profile
FALLBACK_AFTER_S = 180.0  # or failing for this long
CONFIRMED_PROFILE_STATE = "security_profile_confirmed"  # the last profile that connected
FAILURE_EVENTS = {
    FailureKind.UNAUTHORIZED: SecurityEventType.FAILED_TO_AUTHENTICATE_AT_CENTRAL_SYSTEM,
    FailureKind.SERVER_CERTIFICATE: SecurityEventType.INVALID_CENTRAL_SYSTEM_CERTIFICATE,
    FailureKind.TLS_VERSION: SecurityEventType.INVALID_TLS_VERSION,
}


@dataclass
class Trial:
    """A raised profile that has not connected yet."""

    profile: int
    since: float  # time.monotonic() of its first failed attempt
    attempts: int = 0


class TransportSecurity:
    def __init__(self, config: ConfigurationStore, store: CertificateStore, identity: StationIdentity,
                 security_log: SecurityLog, csms_url_is_tls: Callable[[], bool]) -> None:
        self._config = config
        self._store = store
        self._identity = identity
        self._log = security_log
        self._url_is_tls = csms_url_is_tls
        self._link: Link | None = None
        self.central_system_roots = 0  # kept current by `secured` and the certificate handlers
        self._falling_back = False
        self._last_failure: FailureKind | None = None
        self._trial: Trial | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        config.guard(keys.AUTHORIZATION_KEY, check_authorization_key)
        config.guard(keys.SECURITY_PROFILE, self._check_profile)
        config.listen(keys.AUTHORIZATION_KEY, self._key_changed)
        config.listen(keys.SECURITY_PROFILE, self._profile_changed)

    @property
    def profile(self) -> SecurityProfile:
        return SecurityProfile(self._config.get(keys.SECURITY_PROFILE))

    def use_link(self, link: Link) -> None:
        self._link = link

    def reopen(self, reason: str) -> None:
        if self._link is not None:
            self._link.reopen(reason)

    # ---- the next connection -------------------------------------------------------------------

    async def secured(self, base: TransportSettings) -> TransportSettings:
        profile = self.profile
        installed = await self._store.installed(CertificateUse.central_system_root_certificate)
        roots = [item.pem for item in installed]
        self.central_system_roots = len(roots)
        if profile.needs_tls and not base.uses_tls:
            raise TransportError(f"SecurityProfile {profile} needs a wss:// CSMS URL; not connecting to "
                                 "an unsecured one", FailureKind.CONFIGURATION)
        key = self._config.get(keys.AUTHORIZATION_KEY)
        if profile.sends_basic_auth and not has_valid_key(key):
            raise TransportError(f"SecurityProfile {profile} needs an AuthorizationKey",
                                 FailureKind.CONFIGURATION)
        password = password_bytes(key) if profile.sends_basic_auth else None
        if not base.uses_tls:
            return replace(base, basic_password=password)
        client = None
        if profile is SecurityProfile.TLS_CLIENT_CERTIFICATE:
            self._identity.promote_due()
            if not self._identity.usable():
                raise TransportError("SecurityProfile 3 needs a valid charge point certificate",
                                     FailureKind.CONFIGURATION)
            client = (self._identity.current.chain, self._identity.current.key)
        try:
            context = client_context(roots, system_cas=not profile.needs_tls, client_certificate=client)
        except NoTrustAnchor as error:
            raise TransportError(f"SecurityProfile {profile}: {error}", FailureKind.CONFIGURATION) from None
        except (ssl.SSLError, OSError) as error:
            raise TransportError(f"cannot load the TLS certificates: {error}",
                                 FailureKind.CONFIGURATION) from None
        return replace(base, ssl_context=context, basic_password=password)

    # ---- LinkObserver --------------------------------------------------------------------------

    async def link_opened(self) -> None:
        self._last_failure, self._trial = None, None
        profile = int(self.profile)
        if await read_state(CONFIRMED_PROFILE_STATE) != profile:
            await write_state(CONFIRMED_PROFILE_STATE, profile)
            log.info("SecurityProfile %s works", profile)

    async def link_failed(self, error: TransportError) -> None:
        if error.kind is not self._last_failure and error.kind in FAILURE_EVENTS:
            await self._log.record(FAILURE_EVENTS[error.kind], str(error))
        self._last_failure = error.kind
        confirmed = await read_state(CONFIRMED_PROFILE_STATE)
        profile = int(self.profile)
        if confirmed is None or profile <= confirmed:
            return
        now = time.monotonic()
        if self._trial is None or self._trial.profile != profile:
            self._trial = Trial(profile, since=now)
        self._trial.attempts += 1
        if self._trial.attempts >= FALLBACK_AFTER_FAILURES or now - self._trial.since >= FALLBACK_AFTER_S:
            await self._fall_back(profile, confirmed, self._trial.attempts)

    async def _fall_back(self, profile: int, confirmed: int, attempts: int) -> None:
        self._trial = None
        self._falling_back = True
        try:
            await change_configuration(self._config, keys.SECURITY_PROFILE, confirmed)
        finally:
            self._falling_back = False
        log.error("SecurityProfile %s could not connect (%d attempts): back to %s",
                  profile, attempts, confirmed)
        await self._log.record(SecurityEventType.RECONFIGURATION_OF_SECURITY_PARAMETERS,
                               f"SecurityProfile {profile} could not connect; back to {confirmed}")

    # ---- guards and listeners ------------------------------------------------------------------

    def _check_profile(self, value: int) -> None:
        check_profile_change(value, Prerequisites(
            current=self._config.get(keys.SECURITY_PROFILE),
            authorization_key=self._config.get(keys.AUTHORIZATION_KEY), url_is_tls=self._url_is_tls(),
            central_system_roots=self.central_system_roots, station_certificate=self._identity.usable()))

    def _key_changed(self, _key: ConfigKey, _value: Any) -> None:
        self._spawn(self._log.record(SecurityEventType.RECONFIGURATION_OF_SECURITY_PARAMETERS,
                                     "AuthorizationKey changed"))
        self.reopen("AuthorizationKey changed")

    def _profile_changed(self, _key: ConfigKey, value: Any) -> None:
        if self._falling_back:
            return
        self._spawn(self._log.record(SecurityEventType.RECONFIGURATION_OF_SECURITY_PARAMETERS,
                                     f"SecurityProfile changed to {value}"))
        self.reopen(f"SecurityProfile changed to {value}")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
