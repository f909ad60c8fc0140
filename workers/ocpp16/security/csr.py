"""The station's key pairs and certificate signing requests (Security Whitepaper ed.2 A02/A03).

A new key pair for every request (A02: "generate a new public/private key pair"): EC P-256,
above the whitepaper's minimum (EC 224 bits) and cheap on the station's CPU. The CSR names the
charge point as the CSMS knows it (CN = charge point id, A00.FR.4xx uses the serial number,
which is what our id is) and the operator (O = CpoName); it is signed with SHA-256.
"""

from __future__ import annotations

import logging

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

PrivateKey = ec.EllipticCurvePrivateKey


def new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def build_csr(key: PrivateKey, *, common_name: str, organization: str) -> str:
    """The PEM CSR for `key`; without a CpoName the O= attribute is left out (logged)."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    else:
        log.warning("CpoName is empty: the certificate signing request has no O= attribute")
    request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    return request.sign(key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()
