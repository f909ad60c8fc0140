"""Who signed a package, and whether the signature covers it.

ECDSA P-256 with SHA-256: the curve the station's OCPP PKI already uses, supported by every CA
and HSM a manufacturer is likely to sign with, and usable over a pre-computed digest, so a
200 MB package is hashed while it streams past and never held in memory (Ed25519 would need
the whole message, or its pre-hash variant that X.509 tooling rarely supports).

The signer certificate travels in the header; it must chain, through the header's
intermediates, to a manufacturer root provisioned on the station, and every certificate must
be valid now. A signer certificate with an extended key usage must allow code signing.
"""

from __future__ import annotations

import struct
from datetime import datetime
from itertools import pairwise
from typing import BinaryIO

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import ExtendedKeyUsageOID

from workers.fota.errors import PackageRefused, RefusalReason

SIGNATURE_LENGTH = struct.Struct(">H")
MAX_SIGNATURE_BYTES = 256  # a DER ECDSA P-256 signature is at most 72 bytes
_PREHASHED = ec.ECDSA(utils.Prehashed(hashes.SHA256()))


def sign_digest(key: ec.EllipticCurvePrivateKey, digest: bytes) -> bytes:
    """The signature block: length + DER signature over the SHA-256 `digest`."""
    signature = key.sign(digest, _PREHASHED)
    return SIGNATURE_LENGTH.pack(len(signature)) + signature


def read_signature(stream: BinaryIO) -> bytes:
    """The DER signature at the end of the package; the stream must end right after it."""
    length_bytes = stream.read(SIGNATURE_LENGTH.size)
    if len(length_bytes) < SIGNATURE_LENGTH.size:
        raise PackageRefused(RefusalReason.TRUNCATED, "the file ends before the signature")
    (length,) = SIGNATURE_LENGTH.unpack(length_bytes)
    if not 0 < length <= MAX_SIGNATURE_BYTES:
        raise PackageRefused(RefusalReason.SIGNATURE_INVALID, f"signature of {length} bytes")
    signature = stream.read(length)
    if len(signature) < length:
        raise PackageRefused(RefusalReason.TRUNCATED, "the file ends inside the signature")
    if stream.read(1):
        raise PackageRefused(RefusalReason.TRAILING_DATA, "bytes follow the signature")
    return signature


def verify_digest(signer: x509.Certificate, digest: bytes, signature: bytes) -> None:
    key = signer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise PackageRefused(RefusalReason.CERTIFICATE_UNTRUSTED, "the signer key is not an EC key")
    try:
        key.verify(signature, digest, _PREHASHED)
    except InvalidSignature:
        raise PackageRefused(RefusalReason.SIGNATURE_INVALID,
                             "the signature does not match the package's bytes") from None


def parse_chain(pems: tuple[str, ...]) -> list[x509.Certificate]:
    try:
        return [x509.load_pem_x509_certificate(text.encode()) for text in pems]
    except ValueError as error:
        raise PackageRefused(RefusalReason.BAD_FORMAT, f"unreadable signer certificate: {error}") from None


def check_signer_chain(chain: list[x509.Certificate], roots: list[x509.Certificate], now: datetime) -> None:
    """PackageRefused unless chain[0] leads to one of `roots` and all are valid at `now`."""
    if not roots:
        raise PackageRefused(RefusalReason.CERTIFICATE_UNTRUSTED, "no manufacturer root is provisioned")
    _check_code_signing(chain[0])
    for certificate, issuer in pairwise(chain):
        if not _issued_by(certificate, issuer) or not _is_ca(issuer):
            raise PackageRefused(RefusalReason.CERTIFICATE_UNTRUSTED,
                                 f"{_name(certificate)} is not issued by the next certificate (a CA)")
    top = chain[-1]
    anchor = next((root for root in roots if top == root or _issued_by(top, root)), None)
    if anchor is None:
        raise PackageRefused(RefusalReason.CERTIFICATE_UNTRUSTED,
                             f"{_name(top)} does not chain to a manufacturer root")
    for certificate in [*chain, anchor]:
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise PackageRefused(RefusalReason.CERTIFICATE_EXPIRED,
                                 f"{_name(certificate)} is valid only from "
                                 f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                                 f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")


def _check_code_signing(signer: x509.Certificate) -> None:
    try:
        usages = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.CODE_SIGNING not in usages:
        raise PackageRefused(RefusalReason.CERTIFICATE_UNTRUSTED,
                             f"{_name(signer)} is not for code signing (extended key usage)")


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _name(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string()
