"""The configurator's way into ocpp16's link settings: the command contract.OCPP_CONFIGURE.

Why beside ChangeConfiguration and not through it: the CSMS URL and the charge point id are the
station's own settings. The CSMS can neither read nor change them (they are no configuration
keys: GetConfiguration does not list them, ChangeConfiguration answers NotSupported), because a
CSMS that could move the station to another CSMS or identity could take it over. SecurityProfile
and AuthorizationKey are OCPP keys that the operator may set as well. Nothing needs a restart.

- CsmsUrl, ChargePointId: checked (`parse_csms_url`, `parse_charge_point_id`), persisted in
  OcppState (`ADDRESS_STATE`, only the fields the operator set) so that they win over
  OCPP_CSMS_URL / OCPP_CHARGE_POINT_ID after a restart too, then the service reopens the link
  with them. A new address means a new BootNotification on the next connection: a CSMS at
  another URL, or the same CSMS seeing another identity, has not registered this charge point,
  and OCPP 1.6 §4.2 sends nothing else before it is Accepted. The value in force again: nothing.
- SecurityProfile, AuthorizationKey: exactly what ChangeConfiguration does (the key's rules and
  the security guards, persist, then apply; the security feature's listeners record the
  ReconfigurationOfSecurityParameters event and reopen the link); a Rejected carries the rule
  broken as `reason`, never the key's value.
- TLS: profiles 2 and 3 need a wss:// URL, and a profile is never lowered, so while one is in
  force a ws:// CsmsUrl is Rejected (the station could never connect again). This module also
  guards SecurityProfile against the URL in force now, for the CSMS's ChangeConfiguration too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from django.db import DatabaseError

from bus.messages.operator import OcppConfigureReply, OcppConfigureRequest
from workers.ocpp16 import config_keys as keys
from workers.ocpp16.config_keys import ConfigKey, ConfigurationStore, InvalidValue
from workers.ocpp16.persisted import change_configuration, read_state, write_state
from workers.ocpp16.security.profiles import SecurityProfile
from workers.ocpp16.settings import Ocpp16Settings

log = logging.getLogger(__name__)

ADDRESS_STATE = "operator_address"  # OcppState: {"csms_url": ..., "charge_point_id": ...}, each optional
MAX_CHARGE_POINT_ID_CHARS = 48  # the identity's limit (Security Whitepaper; OCPP 2.0.1 identity)
URL_SCHEMES = ("ws", "wss")
REASON_MAX_CHARS = 300  # OcppConfigureReply.reason
SECURITY_KEYS: dict[str, ConfigKey] = {key.name: key
                                        for key in (keys.SECURITY_PROFILE, keys.AUTHORIZATION_KEY)}
ADDRESS_FIELDS = {"CsmsUrl": "csms_url", "ChargePointId": "charge_point_id"}  # request key -> field


@dataclass(frozen=True)
class LinkAddress:
    """Where the station connects and as whom."""

    csms_url: str  # base URL; the charge point id is appended to its path
    charge_point_id: str


def parse_csms_url(text: str) -> str:
    """The CSMS base URL without a trailing '/', or InvalidValue saying what is wrong."""
    url = text.strip()
    if not url.isprintable() or any(char.isspace() for char in url):
        raise InvalidValue("must be a URL without spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is no number or out of range)
    except ValueError as error:
        raise InvalidValue(f"is not a valid URL: {error}") from None
    if parts.scheme.lower() not in URL_SCHEMES:
        raise InvalidValue("must start with ws:// or wss://")
    if not parts.hostname:
        raise InvalidValue("must name a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidValue("must not carry a user or password (the AuthorizationKey is the password)")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise InvalidValue("must not have a query or fragment: the charge point id is appended to its path")
    return parts._replace(scheme=parts.scheme.lower()).geturl().rstrip("/")


def parse_charge_point_id(text: str) -> str:
    """The charge point identity, or InvalidValue: it is the last part of the URL path and the
    HTTP Basic user name, so no '/', no ':' and no spaces."""
    identity = text.strip()
    if not 1 <= len(identity) <= MAX_CHARGE_POINT_ID_CHARS:
        raise InvalidValue(f"must be 1-{MAX_CHARGE_POINT_ID_CHARS} characters")
    if not identity.isprintable() or any(char.isspace() for char in identity):
        raise InvalidValue("must be printable, without spaces")
    if "/" in identity:
        raise InvalidValue("must not contain '/' (it is the last part of the URL path)")
    if ":" in identity:
        raise InvalidValue("must not contain ':' (it is the HTTP Basic user name)")
    return identity


PARSERS: dict[str, Callable[[str], str]] = {"csms_url": parse_csms_url,
                                            "charge_point_id": parse_charge_point_id}


async def with_operator_address(settings: Ocpp16Settings) -> Ocpp16Settings:
    """`settings` with the CSMS URL and charge point id the operator stored, which win over the
    environment's; a stored value that is no longer valid is logged and left out."""
    stored = await read_state(ADDRESS_STATE, {})
    if not isinstance(stored, dict):
        log.error("stored operator address %r is not an object; the environment's is used", stored)
        return settings
    chosen: dict[str, str] = {}
    for field, parse in PARSERS.items():
        if field not in stored:
            continue
        try:
            chosen[field] = parse(str(stored[field]))
        except InvalidValue as error:
            log.error("stored %s %s; the environment's is used", field, error)
    return replace(settings, **chosen)


def _reply(key: str, status: str, reason: str = "") -> OcppConfigureReply:
    log.info("configurator: %s %s%s", key, status, f" ({reason})" if reason else "")
    return OcppConfigureReply(status=status, reason=reason[:REASON_MAX_CHARS])  # type: ignore[arg-type]


def _rejected(key: str, error: Exception) -> OcppConfigureReply:
    text = str(error)
    return _reply(key, "Rejected", text if text.startswith(key) else f"{key} {text}")


AddressChanged = Callable[[LinkAddress], Awaitable[None]]


class OperatorConfiguration:
    """Answers contract.OCPP_CONFIGURE; `address_changed` reconnects (the service's)."""

    def __init__(self, config: ConfigurationStore, address: LinkAddress,
                 address_changed: AddressChanged) -> None:
        self._config = config
        self.address = address
        self._address_changed = address_changed

    async def handle(self, request: OcppConfigureRequest) -> OcppConfigureReply:
        if request.key in SECURITY_KEYS:
            return await self._change_key(SECURITY_KEYS[request.key], request.value)
        field = ADDRESS_FIELDS[request.key]
        try:
            address = replace(self.address, **{field: PARSERS[field](request.value)})
            if field == "csms_url":
                self._url_fits_profile(address.csms_url)
        except InvalidValue as error:
            return _rejected(request.key, error)
        if address == self.address:
            log.info("configurator: %s is already in force; nothing to do", request.key)
            return OcppConfigureReply(status="Accepted")
        try:
            await self._store(field, getattr(address, field))
        except DatabaseError as error:
            log.error("%s could not be saved: %s", request.key, error)
            return _rejected(request.key, InvalidValue("could not be saved; nothing changed"))
        self.address = address
        await self._address_changed(address)
        return _reply(request.key, "Accepted")

    async def _change_key(self, key: ConfigKey, text: str) -> OcppConfigureReply:
        """ChangeConfiguration's rules and persistence (handlers/configuration.py)."""
        try:
            value = self._config.checked(key, text)
        except InvalidValue as error:
            return _rejected(key.name, error)
        try:
            await change_configuration(self._config, key, value)
        except DatabaseError as error:
            log.error("%s could not be saved: %s", key.name, error)
            return _rejected(key.name, InvalidValue("could not be saved; nothing changed"))
        return _reply(key.name, "RebootRequired" if key.reboot_required else "Accepted")

    @staticmethod
    async def _store(field: str, value: str) -> None:
        stored = await read_state(ADDRESS_STATE, {})
        await write_state(ADDRESS_STATE, {**(stored if isinstance(stored, dict) else {}), field: value})

    def _url_fits_profile(self, url: str) -> None:
        profile = SecurityProfile(self._config.get(keys.SECURITY_PROFILE))
        if profile.needs_tls and urlsplit(url).scheme != "wss":
            raise InvalidValue(f"must be wss:// while SecurityProfile is {int(profile)}: that profile "
                               "needs TLS and can never be lowered, so the station could not connect")
