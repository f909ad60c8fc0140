"""Checking the certificate chain a CSMS returns in CertificateSigned (Security Whitepaper ed.2
A02/A03: "validity period, certificate properties, CPO certificate hierarchy"; invalid ->
discard, InvalidChargePointCertificate).

The chain (PEM, leaf first) must be for the key of our pending request and our charge point
id (CN), not expired, each certificate signed by the next one, the intermediates CA
certificates, and the top of it either an installed CentralSystemRootCertificate or signed by
one: the CSMS's PKI is the only hierarchy this station knows. A leaf whose validity has not
begun is accepted (it is switched to later).
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from workers.ocpp16.security.certificates import (
    InvalidCertificate,
    check_key_strength,
    parse_certificates,
    signed_by,
)
from workers.ocpp16.security.csr import PrivateKey

MAX_CHAIN_CERTIFICATES = 10


def _spki(key: object) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def verify_station_chain(chain_pem: str, *, key: PrivateKey, common_name: str, roots: list[x509.Certificate],
                         now: datetime | None = None) -> list[x509.Certificate]:
    """The chain's certificates (leaf first), or InvalidCertificate naming the first problem."""
    now = now or datetime.now(UTC)
    chain = parse_certificates(chain_pem)
    if len(chain) > MAX_CHAIN_CERTIFICATES:
        raise InvalidCertificate(f"{len(chain)} certificates in the chain (at most {MAX_CHAIN_CERTIFICATES})")
    leaf = chain[0]
    if _spki(leaf.public_key()) != _spki(key.public_key()):
        raise InvalidCertificate("the certificate is not for the key of our signing request")
    names = [attribute.value for attribute in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [common_name]:
        raise InvalidCertificate(f"the certificate names {names}, not {common_name!r}")
    check_key_strength(leaf)
    if leaf.not_valid_after_utc <= now:
        raise InvalidCertificate(f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    for certificate, issuer in pairwise(chain):
        if not signed_by(certificate, issuer):
            raise InvalidCertificate(f"{certificate.subject.rfc4514_string()} is not signed by the next "
                                     "certificate of the chain")
        if not _is_ca(issuer) or not issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc:
            raise InvalidCertificate(f"{issuer.subject.rfc4514_string()} is not a valid CA certificate")
    top = chain[-1]
    if not any(top == root or signed_by(top, root) for root in roots):
        raise InvalidCertificate("the chain does not lead to an installed CentralSystemRootCertificate")
    return chain
