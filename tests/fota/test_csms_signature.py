"""The CSMS's signature of a SignedUpdateFirmware's file (workers/fota/csms_signature.py;
Security Whitepaper L01, OCTT TC_080_CS / TC_081_CS): real keys and certificates, real files.
The whole path (job, InvalidSignature, security event): tests/e2e/test_ocpp_firmware_cases.py."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from tests.support.tls import CertificateAuthority, new_key, pem
from workers.fota.bundle import HASH_CHUNK_BYTES
from workers.fota.csms_signature import verify_csms_signature
from workers.fota.errors import PackageRefused, RefusalReason

CONTENT = b"EVUP" + bytes(range(256)) * 40 + b"tail"


@pytest.fixture(scope="module")
def manufacturer() -> CertificateAuthority:
    return CertificateAuthority.create("Manufacturer Root")


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    path = tmp_path / "fw.pkg"
    path.write_bytes(CONTENT)
    return path


def _sign_ec(key: ec.EllipticCurvePrivateKey, content: bytes) -> str:
    return base64.b64encode(key.sign(content, ec.ECDSA(hashes.SHA256()))).decode()


def _refusal(path: Path, signature: str, certificate: str) -> str:
    with pytest.raises(PackageRefused) as refused:
        verify_csms_signature(path, signature, certificate)
    assert refused.value.reason is RefusalReason.SIGNATURE_INVALID
    assert refused.value.reason.is_signature_problem  # the job reports InvalidSignature
    return refused.value.detail


def test_an_ecdsa_signature_over_the_file_is_accepted_also_wrapped_in_lines(
        manufacturer: CertificateAuthority, firmware: Path) -> None:
    key = new_key()
    certificate = pem(manufacturer.issue(key.public_key(), "Firmware Signer"))
    signature = _sign_ec(key, CONTENT)
    verify_csms_signature(firmware, signature, certificate)
    wrapped = "\n".join(signature[i:i + 64] for i in range(0, len(signature), 64))
    verify_csms_signature(firmware, wrapped, certificate + manufacturer.pem)  # the leaf signs


@pytest.mark.parametrize("scheme", ["pkcs1v15", "pss"])
def test_an_rsa_signature_is_accepted_with_either_padding(
        manufacturer: CertificateAuthority, rsa_key: rsa.RSAPrivateKey, firmware: Path, scheme: str) -> None:
    chosen = padding.PKCS1v15() if scheme == "pkcs1v15" else padding.PSS(
        mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    signature = base64.b64encode(rsa_key.sign(CONTENT, chosen, hashes.SHA256())).decode()
    certificate = pem(manufacturer.issue(rsa_key.public_key(), "Firmware Signer"))
    verify_csms_signature(firmware, signature, certificate)


def test_a_file_larger_than_one_read_is_hashed_whole(manufacturer: CertificateAuthority,
                                                      tmp_path: Path) -> None:
    key = new_key()
    content = b"x" * HASH_CHUNK_BYTES + b"the part after the first read"
    path = tmp_path / "big.pkg"
    path.write_bytes(content)
    certificate = pem(manufacturer.issue(key.public_key(), "Firmware Signer"))
    verify_csms_signature(path, _sign_ec(key, content), certificate)
    path.write_bytes(content[:-1] + b"!")
    assert "does not match" in _refusal(path, _sign_ec(key, content), certificate)


@pytest.mark.parametrize("case, reason", [
    ("one byte changed", "does not match the downloaded file"),
    ("another key signed it", "does not match the downloaded file"),
    ("signature of another file", "does not match the downloaded file"),
    ("not base64", "not base64"),
    ("empty", "is empty"),
    ("too long", "too long"),
    ("base64 garbage", "does not match the downloaded file"),
    ("unreadable certificate", "signing certificate cannot be read"),
    ("no certificate", "signing certificate cannot be read"),
    ("ed25519 key", "neither EC nor RSA"),
])
def test_a_signature_that_does_not_hold_is_refused_saying_why(
        manufacturer: CertificateAuthority, firmware: Path, case: str, reason: str) -> None:
    key = new_key()
    certificate = pem(manufacturer.issue(key.public_key(), "Firmware Signer"))
    good = _sign_ec(key, CONTENT)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    if case == "one byte changed":
        firmware.write_bytes(CONTENT[:100] + bytes([CONTENT[100] ^ 1]) + CONTENT[101:])
    signature, used_certificate = {
        "one byte changed": (good, certificate),
        "another key signed it": (_sign_ec(new_key(), CONTENT), certificate),
        "signature of another file": (_sign_ec(key, CONTENT + b"!"), certificate),
        "not base64": ("this is not base64!", certificate),
        "empty": (" \n", certificate),
        "too long": ("A" * 5000, certificate),
        "base64 garbage": (base64.b64encode(b"\x01" * 64).decode(), certificate),
        "unreadable certificate": (good, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        "no certificate": (good, ""),
        "ed25519 key": (base64.b64encode(ed_key.sign(CONTENT)).decode(),
                        pem(manufacturer.issue(ed_key.public_key(), "Firmware Signer"))),
    }[case]
    assert reason in _refusal(firmware, signature, used_certificate)
