"""The CA certificates the CSMS installs (Security Whitepaper ed.2 M03-M05), in table
InstalledCertificate, and how a certificate is named on the wire (CertificateHashData).

CertificateHashData (as in OCPP 2.0.1 / the whitepaper): issuerNameHash = hash of the DER
issuer name, issuerKeyHash = hash of the issuer's public key bits (the BIT STRING value of its
subjectPublicKeyInfo, as OCSP's CertID), serialNumber = hex without leading zeros; hashes as
lowercase hex. The issuer of a self-signed root is itself; for an installed intermediate the
issuer is looked up among the installed certificates (its own key if absent, a documented
fallback: such a certificate can still be listed and deleted).

An installed certificate must be one PEM certificate of a CA, currently valid, with a key of
at least RSA 2048 / EC 224 bits (A00.FR.5xx) and, when self-signed, a valid self-signature.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.db import DatabaseError
from ocpp.v16.enums import CertificateStatus, HashAlgorithm

from webapp.station.models import InstalledCertificate
from workers.ocpp16.txqueue import db

log = logging.getLogger(__name__)

MIN_RSA_BITS = 2048
MIN_EC_BITS = 224
HASHES = {HashAlgorithm.sha256: hashlib.sha256, HashAlgorithm.sha384: hashlib.sha384,
          HashAlgorithm.sha512: hashlib.sha512}
PEM_BEGIN = "-----BEGIN CERTIFICATE-----"


class InvalidCertificate(ValueError):
    """A certificate that cannot be installed or used; the message says why."""


@dataclass(frozen=True)
class HashData:
    """CertificateHashData: how DeleteCertificate and GetInstalledCertificateIds name a certificate."""

    hash_algorithm: str
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str

    def to_wire(self) -> dict[str, str]:
        return {"hashAlgorithm": self.hash_algorithm, "issuerNameHash": self.issuer_name_hash,
                "issuerKeyHash": self.issuer_key_hash, "serialNumber": self.serial_number}

    @classmethod
    def from_request(cls, data: dict[str, str]) -> HashData:
        """From a handler's argument (the library hands nested objects over in snake_case)."""
        return cls(str(data["hash_algorithm"]), str(data["issuer_name_hash"]).lower(),
                   str(data["issuer_key_hash"]).lower(), _serial_text(str(data["serial_number"])))


def _serial_text(serial: str) -> str:
    return serial.lower().removeprefix("0x").lstrip("0") or "0"


def parse_certificates(pem: str) -> list[x509.Certificate]:
    """Every certificate of a PEM text, in order; InvalidCertificate if there is none or one is bad."""
    if PEM_BEGIN not in pem:
        raise InvalidCertificate("not a PEM certificate")
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as error:
        raise InvalidCertificate(f"unreadable PEM: {error}") from None
    if not certificates:
        raise InvalidCertificate("no certificate in the PEM text")
    return certificates


def public_key_bits(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING value (without the unused-bits byte)."""
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    _, body = _der_item(spki, 0)  # SEQUENCE { AlgorithmIdentifier, BIT STRING }
    algorithm_end, _ = _der_item(spki, body)
    _, bits = _der_item(spki, algorithm_end)
    return spki[bits + 1:]


def _der_item(der: bytes, at: int) -> tuple[int, int]:
    """(end of the item at `at`, start of its content)."""
    length = der[at + 1]
    content = at + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[content:content + count], "big")
        content += count
    return content + length, content


def hash_data(certificate: x509.Certificate, issuer: x509.Certificate | None = None,
              algorithm: str = HashAlgorithm.sha256) -> HashData:
    digest = HASHES[HashAlgorithm(algorithm)]
    issuer_key = public_key_bits(issuer or certificate)
    return HashData(str(algorithm), digest(certificate.issuer.public_bytes()).hexdigest(),
                    digest(issuer_key).hexdigest(), f"{certificate.serial_number:x}")


def signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True if `issuer` issued `certificate` (names match and the signature verifies)."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def is_self_signed(certificate: x509.Certificate) -> bool:
    return certificate.issuer == certificate.subject and signed_by(certificate, certificate)


def find_issuer(certificate: x509.Certificate, candidates: list[x509.Certificate]) -> x509.Certificate | None:
    """The certificate among `candidates` that signed `certificate` (itself when self-signed)."""
    if is_self_signed(certificate):
        return certificate
    return next((candidate for candidate in candidates if signed_by(certificate, candidate)), None)


def check_key_strength(certificate: x509.Certificate) -> None:
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise InvalidCertificate(f"RSA key of {key.key_size} bits (at least {MIN_RSA_BITS})")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        raise InvalidCertificate(f"EC key of {key.curve.key_size} bits (at least {MIN_EC_BITS})")


def check_valid_now(certificate: x509.Certificate, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise InvalidCertificate(f"not valid now (valid {certificate.not_valid_before_utc:%Y-%m-%d} "
                                 f"to {certificate.not_valid_after_utc:%Y-%m-%d})")


def check_ca_certificate(pem: str) -> x509.Certificate:
    """The one CA certificate in `pem`, or InvalidCertificate naming what is wrong."""
    certificates = parse_certificates(pem)
    if len(certificates) != 1:
        raise InvalidCertificate(f"{len(certificates)} certificates where one was expected")
    certificate = certificates[0]
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise InvalidCertificate("not a CA certificate (no basicConstraints)") from None
    if not constraints.ca:
        raise InvalidCertificate("not a CA certificate")
    check_key_strength(certificate)
    check_valid_now(certificate)
    if certificate.issuer == certificate.subject and not is_self_signed(certificate):
        raise InvalidCertificate("the self-signature does not verify")
    return certificate


@dataclass(frozen=True)
class Installed:
    row_id: int
    use: str
    certificate: x509.Certificate

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(Encoding.PEM).decode()


def issuer_of(certificate: x509.Certificate, installed: list[Installed]) -> x509.Certificate | None:
    return find_issuer(certificate, [item.certificate for item in installed])


# ---- table access (synchronous ORM code, run on Django's thread through txqueue.db) ----------

def _load_installed() -> list[Installed]:
    installed = []
    for row in InstalledCertificate.objects.order_by("id"):
        try:
            installed.append(Installed(row.pk, row.certificate_type,
                                       x509.load_pem_x509_certificate(row.pem.encode())))
        except ValueError:
            log.error("installed certificate #%s is unreadable and is ignored", row.pk)
    return installed


def _add_installed(use: str, data: HashData, pem: str) -> int:
    return InstalledCertificate.objects.create(
        certificate_type=use, pem=pem, hash_algorithm=data.hash_algorithm,
        issuer_name_hash=data.issuer_name_hash, issuer_key_hash=data.issuer_key_hash,
        serial_number=data.serial_number).pk


def _remove_installed(row_ids: list[int]) -> None:
    InstalledCertificate.objects.filter(pk__in=row_ids).delete()


class CertificateStore:
    """InstallCertificate / DeleteCertificate / GetInstalledCertificateIds over the table."""

    def __init__(self, max_length: Callable[[], int]) -> None:
        self._max_length = max_length  # CertificateStoreMaxLength

    async def installed(self, use: str | None = None) -> list[Installed]:
        everything = await db(_load_installed)
        return [item for item in everything if use is None or item.use == use]

    async def install(self, use: str, pem: str) -> tuple[CertificateStatus, str]:
        """(status, why) for InstallCertificate; `why` is empty when Accepted as new. An invalid
        certificate raises InvalidCertificate (the caller logs a security event for it)."""
        certificate = check_ca_certificate(pem)
        try:
            everything = await self.installed()
            if any(item.use == use and item.certificate == certificate for item in everything):
                return CertificateStatus.accepted, "already installed"
            if len(everything) >= self._max_length():
                return CertificateStatus.rejected, f"the store is full ({len(everything)} certificates)"
            data = hash_data(certificate, issuer_of(certificate, everything))
            await db(_add_installed, use, data, certificate.public_bytes(Encoding.PEM).decode())
        except DatabaseError as error:
            return CertificateStatus.failed, f"cannot store it: {error}"
        return CertificateStatus.accepted, ""

    async def find(self, wanted: HashData) -> list[Installed]:
        """Installed certificates named by `wanted` (hashed with its algorithm)."""
        everything = await self.installed()
        return [item for item in everything
                if hash_data(item.certificate, issuer_of(item.certificate, everything),
                             wanted.hash_algorithm) == wanted]

    async def remove(self, items: list[Installed]) -> None:
        await db(_remove_installed, [item.row_id for item in items])

    async def ids(self, use: str) -> list[HashData]:
        everything = await self.installed()
        return [hash_data(item.certificate, issuer_of(item.certificate, everything))
                for item in everything if item.use == use]
