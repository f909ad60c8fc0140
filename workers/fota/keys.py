"""Key material for update packages.

The symmetric update key (AES-256) is provisioned at activation as a file of 64 hex digits
under STATION_DATA_DIR/keys/ with mode 0600; a file that others can read is refused, since
whoever reads it can decrypt every package. A package names its key by a fingerprint
(`key_id`), so a station can hold the old and the new key while keys are rotated.
The manufacturer's signing key and certificates are PEM files.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

UPDATE_KEY_BYTES = 32  # AES-256
KEY_ID_BYTES = 8
_KEY_ID_DOMAIN = b"station-update-key-id"
_OTHERS_MAY_ACCESS = 0o077


class KeyFileError(ValueError):
    """A key or certificate file that cannot be used; the message names the file."""


@dataclass(frozen=True, repr=False)
class UpdateKey:
    """An AES-256 key and its public fingerprint; repr never shows the key."""

    secret: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(_KEY_ID_DOMAIN + self.secret).digest()[:KEY_ID_BYTES].hex()

    def __repr__(self) -> str:
        return f"UpdateKey(key_id={self.key_id})"


def new_update_key() -> UpdateKey:
    return UpdateKey(secrets.token_bytes(UPDATE_KEY_BYTES))


def write_update_key(path: Path, key: UpdateKey) -> None:
    """Create the key file with mode 0600 from the start (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key.secret.hex() + "\n")


def load_update_key(path: Path) -> UpdateKey:
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as error:
        raise KeyFileError(f"update key {path}: {error.strerror}") from None
    if mode & _OTHERS_MAY_ACCESS:
        raise KeyFileError(f"update key {path}: mode {mode & 0o777:o} lets others read it (chmod 600)")
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != UPDATE_KEY_BYTES:
        raise KeyFileError(f"update key {path}: not {UPDATE_KEY_BYTES * 2} hex digits")
    return UpdateKey(secret)


def load_update_keys(paths: list[Path]) -> dict[str, UpdateKey]:
    """The keys by key_id (a station holds its current key and, while rotating, the next)."""
    return {key.key_id: key for key in map(load_update_key, paths)}


def load_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise KeyFileError(f"signing key {path}: {error.strerror}") from None
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"signing key {path}: not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyFileError(f"signing key {path}: not an EC P-256 key")
    return key


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate of a PEM file, in order."""
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as error:
        raise KeyFileError(f"certificate {path}: {error.strerror}") from None
    except ValueError as error:
        raise KeyFileError(f"certificate {path}: not a PEM certificate ({error})") from None
    if not certificates:
        raise KeyFileError(f"certificate {path}: no certificate in it")
    return certificates
