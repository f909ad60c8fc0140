"""The CSMS's own signature of a SignedUpdateFirmware's file (Security Whitepaper ed.2 L01).

A package carries the manufacturer's signature inside it (checked by workers/fota/package.py).
SignedUpdateFirmware adds a second, independent one: `firmware.signature`, base64, over the
whole downloaded file, made with the key of `firmware.signingCertificate` (that certificate
was already checked against an installed ManufacturerRootCertificate by ocpp16 before the
request was accepted). Both must hold: a file the CSMS did not sign as sent is never installed,
even if it is a genuine package, so a swapped download location cannot smuggle in another one.

SHA-256 with the certificate's key: ECDSA, or RSA with PKCS#1 v1.5 (what the open charge
point stacks sign with) or RSA-PSS (what the whitepaper text names). A failure is a
PackageRefused(SIGNATURE_INVALID): the job reports InvalidSignature and ocpp16 raises the
security event InvalidFirmwareSignature.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from workers.fota.bundle import file_sha256
from workers.fota.errors import PackageRefused, RefusalReason

MAX_SIGNATURE_CHARS = 4096  # an RSA-8192 signature is 1,368 base64 characters


def verify_csms_signature(path: Path, signature: str, signing_certificate: str) -> None:
    """Return if `signature` (base64) is the signing certificate's key's signature over the
    file at `path`; else PackageRefused(SIGNATURE_INVALID) saying why."""
    raw = _decoded(signature)
    public_key = _leaf(signing_certificate).public_key()
    digest = _sha256(path)
    prehashed = utils.Prehashed(hashes.SHA256())
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        schemes = [lambda: public_key.verify(raw, digest, ec.ECDSA(prehashed))]
    elif isinstance(public_key, rsa.RSAPublicKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
        schemes = [lambda: public_key.verify(raw, digest, padding.PKCS1v15(), prehashed),
                   lambda: public_key.verify(raw, digest, pss, prehashed)]
    else:
        raise _refused(f"the signing certificate's key ({type(public_key).__name__}) is neither EC nor RSA")
    for scheme in schemes:
        try:
            scheme()
        except InvalidSignature:
            continue
        return
    raise _refused("the CSMS's signature does not match the downloaded file")


def _decoded(signature: str) -> bytes:
    text = "".join(signature.split())  # base64 may come wrapped in lines
    if not text or len(text) > MAX_SIGNATURE_CHARS:
        raise _refused(f"the CSMS's signature is {'empty' if not text else 'too long'}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _refused("the CSMS's signature is not base64") from None


def _leaf(pem: str) -> x509.Certificate:
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as error:
        raise _refused(f"the signing certificate cannot be read: {error}") from None
    return certificates[0]


def _sha256(path: Path) -> bytes:
    return bytes.fromhex(file_sha256(path))


def _refused(detail: str) -> PackageRefused:
    return PackageRefused(RefusalReason.SIGNATURE_INVALID, detail)
