"""Security profile rules (Security Whitepaper ed.2 §2, A01, A05; ocpp16.md §3.1, §8).

Pure functions, so the rules are tested without a connection:
- the AuthorizationKey becomes the HTTP Basic password as bytes: 32..40 hex digits are the
  hex of a 16..20-byte password (OCPP-J §6.2.2, OCTT TC_085), anything else is taken as its
  UTF-8 text, which must then be 16..20 bytes itself;
- SecurityProfile only goes up through OCPP (A00.FR.001-005), and only when what the new
  profile needs is there (A05): a key for 1 and 2, a CentralSystemRootCertificate and a
  wss:// URL for 2 and 3, the station's certificate for 3.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from enum import IntEnum

from workers.ocpp16.config_keys import InvalidValue

MIN_PASSWORD_BYTES = 16
MAX_PASSWORD_BYTES = 20


class SecurityProfile(IntEnum):
    UNSECURED = 0  # ws://, no authentication (legacy OCPP-J)
    BASIC = 1  # HTTP Basic over an unsecured transport (trusted networks only)
    TLS_BASIC = 2  # wss:// with the CSMS's root certificate + HTTP Basic
    TLS_CLIENT_CERTIFICATE = 3  # wss:// + the station's client certificate, no Basic

    @property
    def sends_basic_auth(self) -> bool:
        return self in (SecurityProfile.BASIC, SecurityProfile.TLS_BASIC)

    @property
    def needs_tls(self) -> bool:
        return self >= SecurityProfile.TLS_BASIC


def password_bytes(authorization_key: str) -> bytes:
    """The Basic password the AuthorizationKey stands for."""
    key = authorization_key.strip()
    is_hex = len(key) % 2 == 0 and all(char in string.hexdigits for char in key)
    if is_hex and 2 * MIN_PASSWORD_BYTES <= len(key) <= 2 * MAX_PASSWORD_BYTES:
        return bytes.fromhex(key)
    return key.encode()


def check_authorization_key(value: str) -> None:
    """Guard of AuthorizationKey (the message never repeats the value: it is a secret)."""
    if not MIN_PASSWORD_BYTES <= len(password_bytes(value)) <= MAX_PASSWORD_BYTES:
        raise InvalidValue(f"AuthorizationKey must be {MIN_PASSWORD_BYTES}-{MAX_PASSWORD_BYTES} bytes: "
                           f"{2 * MIN_PASSWORD_BYTES}-{2 * MAX_PASSWORD_BYTES} hex digits or "
                           f"{MIN_PASSWORD_BYTES}-{MAX_PASSWORD_BYTES} characters")


def has_valid_key(authorization_key: str) -> bool:
    try:
        check_authorization_key(authorization_key)
    except InvalidValue:
        return False
    return True


@dataclass(frozen=True)
class Prerequisites:
    """What the station has now, for deciding a SecurityProfile change."""

    current: int
    authorization_key: str
    url_is_tls: bool
    central_system_roots: int
    station_certificate: bool


def check_profile_change(new: int, have: Prerequisites) -> None:
    """Guard of SecurityProfile: raise InvalidValue (ChangeConfiguration Rejected) naming why."""
    if new <= have.current:
        raise InvalidValue(f"SecurityProfile may only go up (now {have.current}, asked {new})")
    profile = SecurityProfile(new)
    if profile.sends_basic_auth and not has_valid_key(have.authorization_key):
        raise InvalidValue(f"SecurityProfile {new} needs a valid AuthorizationKey first")
    if profile.needs_tls and not have.url_is_tls:
        raise InvalidValue(f"SecurityProfile {new} needs a wss:// CSMS URL")
    if profile.needs_tls and have.central_system_roots == 0:
        raise InvalidValue(f"SecurityProfile {new} needs a CentralSystemRootCertificate first")
    if profile is SecurityProfile.TLS_CLIENT_CERTIFICATE and not have.station_certificate:
        raise InvalidValue(f"SecurityProfile {new} needs the charge point certificate first")
