"""Keys and certificates provisioned at activation (ops/sw_activation.sh) put to use by ocpp16,
once, at start, before the first connection to the CSMS.

Activation copies what the operator gives into STATION_DATA_DIR; the OCPP side only knows its
certificate store (table InstalledCertificate) and the station identity files, so:
- `certs/csms-ca.pem` -> CentralSystemRootCertificate(s): a freshly activated station can connect
  with wss:// under SecurityProfile 2 (or 3) without waiting for an InstallCertificate it could
  not receive anyway (no connection without a trusted root);
- `keys/manufacturer-root.pem` -> ManufacturerRootCertificate(s): SignedUpdateFirmware's signing
  certificate is checked against it (firmware_signing.py), as the FOTA job checks packages;
- `certs/station.pem` + `certs/station.key` are already where the station identity lives
  (identity.py), so nothing is copied: they are only checked, and a damaged, mismatched or
  expired pair is logged (SecurityProfile 3 then refuses to connect with a clear error).

Each certificate of a file is taken in at most once: its fingerprint is remembered (OcppState
`PROVISIONED_STATE`), so a restart changes nothing, a certificate the CSMS deleted later
(DeleteCertificate) is not brought back by the next start, and a new file (activation with
another CA) is taken in. The store's rules apply unchanged (CA certificate, valid now, strong
key, CertificateStoreMaxLength): a file they refuse, or one that cannot be read, is logged as an
error and skipped; the station starts anyway.

Decision, signed firmware only: the whitepaper makes a station that has a ManufacturerRootCertificate
refuse plain UpdateFirmware (L01.FR.20) because the CSMS that installed one uses the signed
process. A root provisioned at activation says nothing about the CSMS, and every package this
station installs is signed and verified against the manufacturer root and the update key
whichever request named it (workers/fota/trust.py). Refusing plain UpdateFirmware would only lock
out a CSMS without the security extension, so a provisioned root does not make the station
signed-only: `installed_by_csms` leaves out the certificates this module added, and only a
ManufacturerRootCertificate installed through OCPP does. A certificate the store already held
before (the CSMS installed it) stays the CSMS's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key
from django.conf import settings
from django.db import DatabaseError
from ocpp.v16.enums import CertificateStatus, CertificateUse

from webapp.env import StationEnv
from workers.fota.trust import MANUFACTURER_ROOT_FILE
from workers.ocpp16.persisted import read_state, write_state
from workers.ocpp16.security.certificates import (
    CertificateStore,
    Installed,
    InvalidCertificate,
    parse_certificates,
)
from workers.ocpp16.security.identity import StationIdentity

if TYPE_CHECKING:
    from workers.ocpp16.security.feature import Security

log = logging.getLogger(__name__)

PROVISIONED_STATE = "provisioned_certificates"  # {"<use>:<sha256 fingerprint>": Origin}
CSMS_CA_FILE = "csms-ca.pem"  # under STATION_DATA_DIR/certs (MANUFACTURER_ROOT_FILE: under keys/)
CS_ROOT = CertificateUse.central_system_root_certificate
MANUFACTURER_ROOT = CertificateUse.manufacturer_root_certificate


class Origin(StrEnum):
    """Where a certificate of a provisioned file was when it was first seen."""

    ADDED = "added"  # this module put it into the store
    ALREADY_THERE = "already_there"  # the CSMS had installed it: it stays the CSMS's


@dataclass(frozen=True)
class ProvisionedFile:
    path: Path
    use: CertificateUse


@dataclass(frozen=True)
class ProvisionedFiles:
    certificates: tuple[ProvisionedFile, ...]

    @classmethod
    def for_env(cls, env: StationEnv) -> ProvisionedFiles:
        return cls((
            ProvisionedFile(env.data_dir / "certs" / CSMS_CA_FILE, CS_ROOT),
            ProvisionedFile(env.keys_dir / MANUFACTURER_ROOT_FILE, MANUFACTURER_ROOT),
        ))


def fingerprint(use: str, certificate: x509.Certificate) -> str:
    return f"{use}:{certificate.fingerprint(hashes.SHA256()).hex()}"


async def take_in_provisioned(security: Security, files: ProvisionedFiles | None = None) -> None:
    """ocpp16's start: the provisioned CA files into the store, the station pair checked.
    Never raises for a bad file or a database error: the station must start anyway."""
    try:
        await take_in_certificates(security.store, files or ProvisionedFiles.for_env(settings.STATION_ENV))
        roots = await security.store.installed(CS_ROOT)
    except DatabaseError as error:
        log.error("provisioned certificates not taken in (database): %s", error)
        return
    finally:
        check_station_pair(security.identity)
    security.transport.central_system_roots = len(roots)


async def take_in_certificates(store: CertificateStore, files: ProvisionedFiles) -> int:
    """Add the certificates of `files` not taken in before; the number added."""
    seen = await _seen()
    added = 0
    for file in files.certificates:
        for certificate in _read_certificates(file):
            name = fingerprint(file.use, certificate)
            if name in seen:
                continue
            origin = await _take_in(store, file, certificate)
            if origin is not None:
                seen[name] = origin
                added += origin is Origin.ADDED
    await write_state(PROVISIONED_STATE, seen or None)
    return added


async def installed_by_csms(store: CertificateStore, use: str) -> list[Installed]:
    """The certificates of `use` in the store that this module did not add (see the docstring:
    only a ManufacturerRootCertificate the CSMS installed makes the station signed-only)."""
    added = {name for name, origin in (await _seen()).items() if origin == Origin.ADDED}
    return [item for item in await store.installed(use) if fingerprint(use, item.certificate) not in added]


async def _seen() -> dict[str, str]:
    """The record of certificates taken in; a damaged one is logged and started afresh (the
    store's own "already installed" check still keeps a certificate from being added twice)."""
    record = await read_state(PROVISIONED_STATE, {})
    if isinstance(record, dict) and all(isinstance(origin, str) for origin in record.values()):
        return record
    log.error("the record of provisioned certificates (OcppState %s) is damaged: started afresh",
              PROVISIONED_STATE)
    return {}


def _read_certificates(file: ProvisionedFile) -> list[x509.Certificate]:
    if not file.path.exists():
        return []
    try:
        return parse_certificates(file.path.read_text(errors="replace"))
    except OSError as error:
        log.error("provisioned %s %s cannot be read (%s): not used", file.use, file.path, error.strerror)
    except InvalidCertificate as error:
        log.error("provisioned %s %s is damaged (%s): not used", file.use, file.path, error)
    return []


async def _take_in(store: CertificateStore, file: ProvisionedFile,
                   certificate: x509.Certificate) -> Origin | None:
    """Install one certificate; its origin, or None when it is not in the store (try again next start)."""
    subject = certificate.subject.rfc4514_string()
    try:
        status, why = await store.install(file.use, certificate.public_bytes(Encoding.PEM).decode())
    except InvalidCertificate as error:
        log.error("provisioned %s %s (%s) refused: %s", file.use, file.path, subject, error)
        return None
    if status is not CertificateStatus.accepted:
        log.error("provisioned %s %s (%s) not stored: %s", file.use, file.path, subject, why)
        return None
    if why:  # "already installed": the CSMS had put it there
        return Origin.ALREADY_THERE
    log.info("provisioned %s taken in from %s: %s", file.use, file.path, subject)
    return Origin.ADDED


def check_station_pair(identity: StationIdentity) -> None:
    """Log what is wrong with a provisioned charge point certificate (SecurityProfile 3)."""
    chain_file, key_file = identity.current.chain, identity.current.key
    if not chain_file.exists() and not key_file.exists():
        return
    problem = _pair_problem(chain_file, key_file)
    if problem:
        log.error("the charge point certificate %s is unusable: %s", chain_file, problem)


def _pair_problem(chain_file: Path, key_file: Path) -> str:
    try:
        leaf = parse_certificates(chain_file.read_text(errors="replace"))[0]
        key = load_pem_private_key(key_file.read_bytes(), password=None)
    except OSError as error:
        return f"{error.filename}: {error.strerror}"
    except InvalidCertificate as error:
        return str(error)
    except (ValueError, TypeError) as error:
        return f"{key_file} is not an unencrypted PEM private key ({error})"
    if _spki(leaf.public_key()) != _spki(key.public_key()):
        return f"{key_file} is not the key of the certificate"
    if leaf.not_valid_after_utc <= datetime.now(UTC):
        return f"it expired on {leaf.not_valid_after_utc:%Y-%m-%d}"
    return ""


def _spki(key: object) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]
