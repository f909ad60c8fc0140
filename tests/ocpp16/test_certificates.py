"""Certificates: the CA store the CSMS manages (InstallCertificate, GetInstalledCertificateIds,
DeleteCertificate), the station's own certificate (SignCertificate / CertificateSigned, A02/A03)
and the security log. Protocol cases run ocpp16 as a subprocess against the test CSMS; the
rules (hash data, chain checks, key files, the rolling log) are also checked in-process."""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from ocpp.v16 import call

from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.database import query
from tests.support.tls import (
    CertificateAuthority,
    new_key,
    pem,
    seed_configuration,
    seed_root,
    seed_station_certificate,
    server_context,
)
from tests.support.waiting import async_wait_until
from webapp.station.models import OutboxMessage, SecurityEvent
from workers.ocpp16.notices import Notices
from workers.ocpp16.security import events
from workers.ocpp16.security.certificates import InvalidCertificate, check_ca_certificate, hash_data
from workers.ocpp16.security.chain import verify_station_chain
from workers.ocpp16.security.csr import build_csr
from workers.ocpp16.security.events import SecurityEventType, SecurityLog
from workers.ocpp16.security.identity import StationIdentity
from workers.ocpp16.txqueue import db
from workers.sim.csms import Csms, CsmsBehaviour

CS_ROOT, MANUFACTURER_ROOT = "CentralSystemRootCertificate", "ManufacturerRootCertificate"


def expected_hash_data(certificate: x509.Certificate, issuer: x509.Certificate) -> dict[str, str]:
    """CertificateHashData computed here from first principles (OCSP CertID style)."""
    key = issuer.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key_bits = key.public_bytes(Encoding.DER, PublicFormat.PKCS1)
    else:
        key_bits = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)  # type: ignore[call-arg]
    return {"hash_algorithm": "SHA256",
            "issuer_name_hash": hashlib.sha256(certificate.issuer.public_bytes()).hexdigest(),
            "issuer_key_hash": hashlib.sha256(key_bits).hexdigest(),
            "serial_number": f"{certificate.serial_number:x}"}


def security_event_types(database: Path) -> list[str]:
    return [row["type"] for row in query(database, "SELECT type FROM station_securityevent ORDER BY id")]


async def eventually_called(csms: Csms, event_type: str) -> None:
    async def seen() -> bool:
        return any(c.payload["type"] == event_type for c in csms.calls("SecurityEventNotification"))
    await async_wait_until(seen, what=f"SecurityEventNotification {event_type}")


def rsa_ca(bits: int) -> CertificateAuthority:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"RSA {bits} Root")])
    now = datetime.now(UTC) - timedelta(minutes=1)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    return CertificateAuthority(f"RSA {bits} Root", key, certificate)  # type: ignore[arg-type]


# ---- the CA store over OCPP ---------------------------------------------------------------------

async def test_the_csms_installs_lists_and_deletes_ca_certificates(
        csms: Csms, start_ocpp16, service_db: Path) -> None:
    """TC_075_1 / TC_075_2 (install a Manufacturer / CentralSystem root), M03 (list), TC_076
    (delete), and M05's refusals: not a certificate (with InvalidCentralSystemCertificate after
    the conf, as OCTT's TC_078 checks from the CSMS side), not a CA, a weak key, a full store."""
    start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")

    async def send(request: object) -> object:
        return await csms.send(CHARGE_POINT_ID, request)

    async def install(use: str, text: str) -> str:
        return str((await send(call.InstallCertificate(certificate_type=use, certificate=text))).status)

    listed = await send(call.GetInstalledCertificateIds(certificate_type=CS_ROOT))
    assert listed.status == "NotFound" and not listed.certificate_hash_data
    manufacturer, central = CertificateAuthority.create("Maker Root"), rsa_ca(2048)
    for use, ca in ((MANUFACTURER_ROOT, manufacturer), (CS_ROOT, central), (CS_ROOT, central)):
        assert await install(use, ca.pem) == "Accepted"
    listed = await send(call.GetInstalledCertificateIds(certificate_type=CS_ROOT))
    assert listed.status == "Accepted"
    assert listed.certificate_hash_data == [expected_hash_data(central.certificate, central.certificate)]

    refusals = {"garbage": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
                "leaf": pem(manufacturer.issue(new_key().public_key(), "not a CA")),
                "weak": rsa_ca(1024).pem}
    for name, text in refusals.items():
        assert await install(CS_ROOT, text) == "Rejected", name
    await eventually_called(csms, "InvalidCentralSystemCertificate")

    for index in range(8):  # 2 installed + 8 = CertificateStoreMaxLength (10)
        ca = CertificateAuthority.create(f"Root {index}")
        assert await install(CS_ROOT, ca.pem) == "Accepted"
    assert await install(CS_ROOT, CertificateAuthority.create("One Too Many").pem) == "Rejected"

    maker_id = expected_hash_data(manufacturer.certificate, manufacturer.certificate)
    assert (await send(call.DeleteCertificate(certificate_hash_data=maker_id))).status == "Accepted"
    assert (await send(call.DeleteCertificate(certificate_hash_data=maker_id))).status == "NotFound"
    listed = await send(call.GetInstalledCertificateIds(certificate_type=MANUFACTURER_ROOT))
    assert listed.status == "NotFound"
    rows = query(service_db, "SELECT certificate_type FROM station_installedcertificate")
    assert len(rows) == 9 and {row["certificate_type"] for row in rows} == {CS_ROOT}


# ---- the station's certificate (profile 3) --------------------------------------------------------

async def test_the_station_renews_its_certificate_and_refuses_a_bad_one(
        start_ocpp16, service_db: Path, tmp_path: Path) -> None:
    """A03: a station certificate that expires within a month makes the station send
    SignCertificate with a CSR (new key, CN = charge point id, O = CpoName). TC_077: a chain for
    another key is Rejected, then InvalidChargePointCertificate is sent. TC_074 (A02):
    ExtendedTriggerMessage(SignChargePointCertificate) -> a new CSR; the chain for the older
    request is now Rejected, the one for the new key Accepted, and the station reconnects
    presenting it."""
    ca = CertificateAuthority.create("CSMS Root")
    csms = Csms(port=0, behaviour=CsmsBehaviour(heartbeat_interval_s=60),
                ssl_context=server_context(ca, tmp_path / "tls", client_ca=ca))
    await csms.start()
    try:
        seed_root(service_db, ca.certificate)
        seed_configuration(service_db, SecurityProfile="3", CpoName="Test CPO")
        old = seed_station_certificate(tmp_path / "data", ca, CHARGE_POINT_ID, days=10)
        start_ocpp16(csms.url)
        renewal = await csms.wait_for_call("SignCertificate")
        csr = x509.load_pem_x509_csr(renewal.payload["csr"].encode())
        assert csr.is_signature_valid
        assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CHARGE_POINT_ID
        assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Test CPO"
        assert isinstance(csr.public_key(), ec.EllipticCurvePublicKey)
        assert csr.public_key() != old.public_key()

        stranger = ca.issue(new_key().public_key(), CHARGE_POINT_ID, client=True)
        for chain in (pem(stranger), "not a certificate"):
            assert await signed(csms, chain) == "Rejected"
        await eventually_called(csms, "InvalidChargePointCertificate")

        trigger = await csms.send(CHARGE_POINT_ID, call.ExtendedTriggerMessage(
            requested_message="SignChargePointCertificate"))
        assert trigger.status == "Accepted"
        request = await csms.wait_for_call("SignCertificate", count=2)
        assert await signed(csms, pem(ca.sign_csr(renewal.payload["csr"]))) == "Rejected"  # superseded
        new = ca.sign_csr(request.payload["csr"])
        assert await signed(csms, pem(new)) == "Accepted"

        async def reconnected_with_it() -> bool:
            return any(h.client_serial and int(h.client_serial, 16) == new.serial_number
                       for h in csms.handshakes)
        await async_wait_until(reconnected_with_it, what="a connection with the new certificate")
        key_file = tmp_path / "data" / "certs" / "station.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert security_event_types(service_db).count("InvalidChargePointCertificate") == 3
    finally:
        await csms.stop()


async def signed(csms: Csms, chain: str) -> str:
    """CertificateSigned from the CSMS; the station's status."""
    answer = await csms.send(CHARGE_POINT_ID, call.CertificateSigned(certificate_chain=chain))
    return str(answer.status)


# ---- rules, in-process ---------------------------------------------------------------------------

def test_hash_data_names_a_certificate_by_its_issuer_and_serial() -> None:
    root = rsa_ca(2048)
    intermediate_key = new_key()
    intermediate = root.issue(intermediate_key.public_key(), "Sub CA", ca=True)
    expected = expected_hash_data(intermediate, root.certificate)
    assert hash_data(intermediate, root.certificate).to_wire() == {
        "hashAlgorithm": "SHA256", "issuerNameHash": expected["issuer_name_hash"],
        "issuerKeyHash": expected["issuer_key_hash"], "serialNumber": expected["serial_number"]}
    assert hash_data(intermediate, root.certificate, "SHA512").issuer_name_hash == \
        hashlib.sha512(intermediate.issuer.public_bytes()).hexdigest()


def test_only_current_ca_certificates_with_strong_keys_can_be_installed() -> None:
    check_ca_certificate(CertificateAuthority.create().pem)
    ca = CertificateAuthority.create()
    expired = ca.issue(new_key().public_key(), "Old CA", ca=True,
                       valid_from=datetime.now(UTC) - timedelta(days=20), days=10)
    two = ca.pem + CertificateAuthority.create("Second").pem
    for text, reason in ((pem(expired), "not valid now"), (rsa_ca(1024).pem, "RSA key of 1024 bits"),
                         (two, "2 certificates"), ("hello", "not a PEM"),
                         (pem(ca.issue(new_key().public_key(), "leaf")), "not a CA")):
        with pytest.raises(InvalidCertificate, match=reason):
            check_ca_certificate(text)


def test_a_signed_chain_must_be_ours_current_and_under_the_csms_root() -> None:
    root, other_root = CertificateAuthority.create("Root"), CertificateAuthority.create("Other")
    key = new_key()
    sub_key = new_key()
    sub = root.issue(sub_key.public_key(), "Sub CA", ca=True)
    sub_ca = CertificateAuthority("Sub CA", sub_key, sub)
    leaf = sub_ca.issue(key.public_key(), "CP-1", client=True)

    def verify(chain: str, roots: list[x509.Certificate] | None = None, name: str = "CP-1") -> None:
        verify_station_chain(chain, key=key, common_name=name,  # type: ignore[arg-type]
                             roots=[root.certificate] if roots is None else roots)

    verify(pem(leaf) + pem(sub))
    later = root.issue(key.public_key(), "CP-1", valid_from=datetime.now(UTC) + timedelta(days=2))
    verify(pem(later))  # not valid yet: kept for later
    cases = [
        (pem(root.issue(new_key().public_key(), "CP-1")), {}, "not for the key"),
        (pem(root.issue(key.public_key(), "CP-2")), {}, "names"),
        (pem(root.issue(key.public_key(), "CP-1", valid_from=datetime.now(UTC) - timedelta(days=9), days=1)),
         {}, "expired"),
        (pem(leaf), {}, "does not lead to an installed"),
        (pem(leaf) + pem(sub), {"roots": [other_root.certificate]}, "does not lead to an installed"),
        (pem(leaf) + pem(other_root.certificate), {}, "not signed by the next"),
    ]
    for chain, options, reason in cases:
        with pytest.raises(InvalidCertificate, match=reason):
            verify(chain, **options)  # type: ignore[arg-type]


def test_the_csr_names_the_charge_point_and_the_operator() -> None:
    key = new_key()
    csr = x509.load_pem_x509_csr(build_csr(key, common_name="CP 7", organization="ACME CPO").encode())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=CP 7,O=ACME CPO"
    bare = x509.load_pem_x509_csr(build_csr(key, common_name="CP 7", organization="").encode())
    assert bare.subject.rfc4514_string() == "CN=CP 7"


def test_station_keys_are_private_and_a_future_certificate_waits(tmp_path: Path) -> None:
    ca = CertificateAuthority.create()
    identity = StationIdentity(tmp_path / "certs")
    key = new_key()
    identity.save_pending_key(key)
    assert stat.S_IMODE((tmp_path / "certs").stat().st_mode) == 0o700
    assert stat.S_IMODE(identity.pending_key_path.stat().st_mode) == 0o600
    starts = datetime.now(UTC) + timedelta(hours=1)
    future = ca.issue(key.public_key(), "CP", valid_from=starts)
    assert identity.install(pem(future), key) is False  # waits for its validity
    assert identity.certificate() is None and not identity.pending_key_path.exists()
    assert identity.promote_due() is False
    assert identity.promote_due(now=starts + timedelta(seconds=1)) is True
    assert identity.certificate() == future
    assert stat.S_IMODE(identity.current.key.stat().st_mode) == 0o600


@pytest.mark.django_db(transaction=True)
async def test_the_security_log_rolls_and_pushes_critical_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """A04: every event is logged (rolling: the newest MAX_LOG_ROWS); only critical ones are
    queued for guaranteed delivery (the others are sent from memory when the link is up)."""
    monkeypatch.setattr(events, "MAX_LOG_ROWS", 3)
    notices = Notices(lambda: 3, lambda: 1.0)
    security_log = SecurityLog(notices)
    for index in range(5):
        await security_log.record(SecurityEventType.INVALID_MESSAGES, f"message {index}")
    await security_log.record(SecurityEventType.STARTUP_OF_THE_DEVICE, "x" * 300)
    rows = await db(lambda: list(SecurityEvent.objects.order_by("id").values_list(
        "type", "tech_info", "critical")))
    assert [info[:9] for _, info, _ in rows] == ["message 3", "message 4", "x" * 9]
    assert rows[-1] == ("StartupOfTheDevice", "x" * 255, True)
    queued = await db(lambda: list(OutboxMessage.objects.values_list("action", "payload")))
    assert [(action, payload["type"]) for action, payload in queued] == [
        ("SecurityEventNotification", "StartupOfTheDevice")]
