"""The station's own key and certificate (security profile 3), as files under
STATION_DATA_DIR/certs: keys readable by the station's user only (0600, folder 0700).

Three pairs of files, each replaced atomically (written aside, then renamed):
- `pending.key`: the key of the last certificate signing request, waiting for CertificateSigned;
- `station.pem` + `station.key`: the certificate chain (leaf first) and key in use;
- `next.pem` + `next.key`: a signed certificate whose validity has not begun yet; it replaces
  the one in use once it is valid (A02: "switch as soon as Not valid before is reached").
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from workers.ocpp16.security.csr import PrivateKey

log = logging.getLogger(__name__)

KEY_MODE = 0o600
FOLDER_MODE = 0o700


@dataclass(frozen=True)
class CertificateFiles:
    chain: Path  # PEM, leaf first
    key: Path


class StationIdentity:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.current = CertificateFiles(folder / "station.pem", folder / "station.key")
        self.upcoming = CertificateFiles(folder / "next.pem", folder / "next.key")
        self.pending_key_path = folder / "pending.key"

    # ---- the key of the request in flight ----------------------------------------------------

    def save_pending_key(self, key: PrivateKey) -> None:
        _write_private(self.pending_key_path, _key_pem(key))

    def pending_key(self) -> PrivateKey | None:
        return _read_key(self.pending_key_path)

    # ---- the certificate -----------------------------------------------------------------------

    def install(self, chain_pem: str, key: PrivateKey, now: datetime | None = None) -> bool:
        """Keep a verified chain for `key`; True when it is in use at once, False when it waits
        for its validity to begin. The pending key is consumed."""
        leaf = x509.load_pem_x509_certificate(chain_pem.encode())
        target = self.current if leaf.not_valid_before_utc <= (now or datetime.now(UTC)) else self.upcoming
        _write_private(target.key, _key_pem(key))
        _write_private(target.chain, chain_pem.encode())
        self.pending_key_path.unlink(missing_ok=True)
        return target is self.current

    def promote_due(self, now: datetime | None = None) -> bool:
        """Put the upcoming certificate in use if its validity has begun; True if it was."""
        leaf = _read_leaf(self.upcoming.chain)
        if leaf is None or leaf.not_valid_before_utc > (now or datetime.now(UTC)):
            return False
        try:
            os.replace(self.upcoming.key, self.current.key)
            os.replace(self.upcoming.chain, self.current.chain)
        except OSError as error:
            log.error("cannot switch to the new charge point certificate: %s", error)
            return False
        log.info("the new charge point certificate is in use")
        return True

    def upcoming_from(self) -> datetime | None:
        leaf = _read_leaf(self.upcoming.chain)
        return None if leaf is None else leaf.not_valid_before_utc

    def certificate(self) -> x509.Certificate | None:
        """The leaf in use (None if there is none or its files are unusable)."""
        if not self.current.key.exists():
            return None
        return _read_leaf(self.current.chain)

    def chain(self) -> list[x509.Certificate]:
        """The chain in use, leaf first (empty if there is none)."""
        try:
            return x509.load_pem_x509_certificates(self.current.chain.read_bytes())
        except (OSError, ValueError):
            return []

    def usable(self, now: datetime | None = None) -> bool:
        leaf = self.certificate()
        return leaf is not None and leaf.not_valid_after_utc > (now or datetime.now(UTC))


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def _read_key(path: Path) -> PrivateKey | None:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key  # type: ignore[return-value]


def _read_leaf(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _write_private(path: Path, content: bytes) -> None:
    """Write `content` readable by the owner only, replacing `path` atomically."""
    path.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    aside = path.with_name(path.name + ".new")
    aside.unlink(missing_ok=True)  # O_CREAT keeps an existing file's mode
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEY_MODE)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    os.replace(aside, path)
