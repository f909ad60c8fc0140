"""Whether a SignedUpdateFirmware's signing certificate may be trusted (Security Whitepaper ed.2
L01): it must lead, through the intermediates sent with it, to a ManufacturerRootCertificate
the CSMS installed (InstallCertificate, table InstalledCertificate), every certificate on the
way valid now. Checked before the request is accepted; a failure is answered
InvalidCertificate and logged as the security event InvalidFirmwareSigningCertificate.

The signing certificate must not be a root itself: a self-signed certificate proves nothing
(open charge point stacks refuse it too). Revocation cannot be checked (no CRL or OCSP is
provisioned), so RevokedCertificate is never answered.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509

from workers.ocpp16.security.certificates import (
    InvalidCertificate,
    check_valid_now,
    is_self_signed,
    parse_certificates,
    signed_by,
)

MAX_CHAIN = 5  # the leaf, intermediates, up to a root


def check_signing_certificate(pem: str, roots: list[x509.Certificate], now: datetime) -> x509.Certificate:
    """The signing certificate (first in `pem`) if it chains to one of `roots`; else
    InvalidCertificate saying why."""
    leaf, *intermediates = parse_certificates(pem)
    if not roots:
        raise InvalidCertificate("no ManufacturerRootCertificate is installed")
    if is_self_signed(leaf):
        raise InvalidCertificate("the signing certificate is self-signed")
    current = leaf
    for _ in range(MAX_CHAIN):
        check_valid_now(current, now)
        root = next((root for root in roots if signed_by(current, root)), None)
        if root is not None:
            check_valid_now(root, now)
            return leaf
        issuer = next((candidate for candidate in intermediates
                       if candidate is not current and signed_by(current, candidate)), None)
        if issuer is None:
            raise InvalidCertificate(f"{_name(current)} is not issued by an installed "
                                     "ManufacturerRootCertificate")
        current = issuer
    raise InvalidCertificate(f"no installed ManufacturerRootCertificate within {MAX_CHAIN} certificates")


def _name(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "the certificate"
