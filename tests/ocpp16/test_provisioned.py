"""Certificates provisioned at activation (STATION_DATA_DIR/certs/csms-ca.pem,
keys/manufacturer-root.pem, certs/station.pem + station.key) are used by ocpp16: taken into its
store once at start, damaged files logged and skipped. The rules run in-process on the real
database; the end-to-end case runs ocpp16 as a subprocess against a TLS CSMS."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ocpp.v16 import call

from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.tls import (
    CertificateAuthority,
    new_key,
    pem,
    seed_configuration,
    server_context,
    write_pair,
)
from workers.ocpp16.persisted import write_state
from workers.ocpp16.security.certificates import CertificateStore
from workers.ocpp16.security.identity import StationIdentity
from workers.ocpp16.security.provisioned import (
    CS_ROOT,
    MANUFACTURER_ROOT,
    PROVISIONED_STATE,
    ProvisionedFile,
    ProvisionedFiles,
    check_station_pair,
    installed_by_csms,
    take_in_certificates,
)

AUTHORIZATION_KEY = "0001020304050607FFFFFFFFFFFFFFFFFFFFFFFF"
LOGGER = "workers.ocpp16.security.provisioned"


def provisioned(tmp_path: Path) -> ProvisionedFiles:
    return ProvisionedFiles((ProvisionedFile(tmp_path / "certs" / "csms-ca.pem", CS_ROOT),
                             ProvisionedFile(tmp_path / "keys" / "manufacturer-root.pem", MANUFACTURER_ROOT)))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def store() -> CertificateStore:
    return CertificateStore(lambda: 20)


async def installed_pems(certificates: CertificateStore, use: str) -> list[str]:
    return [item.pem for item in await certificates.installed(use)]


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == LOGGER and record.levelno == logging.ERROR]


# ---- in-process: the store and the record -----------------------------------------------------------

@pytest.mark.django_db(transaction=True)
async def test_provisioned_roots_are_taken_in_once_and_a_csms_deletion_stands(tmp_path: Path) -> None:
    csms_ca, manufacturer = CertificateAuthority.create("CSMS CA"), CertificateAuthority.create("Maker")
    files = provisioned(tmp_path)
    write(files.certificates[0].path, csms_ca.pem)
    write(files.certificates[1].path, manufacturer.pem)
    certificates = store()

    assert await take_in_certificates(certificates, files) == 2
    assert await installed_pems(certificates, CS_ROOT) == [csms_ca.pem]
    assert await installed_pems(certificates, MANUFACTURER_ROOT) == [manufacturer.pem]
    assert await take_in_certificates(certificates, files) == 0  # idempotent
    assert len(await certificates.installed()) == 2
    # a provisioned manufacturer root does not make the station signed-only (see the module)
    assert await installed_by_csms(certificates, MANUFACTURER_ROOT) == []

    await certificates.remove(await certificates.installed(CS_ROOT))  # the CSMS's DeleteCertificate
    assert await take_in_certificates(certificates, files) == 0
    assert await installed_pems(certificates, CS_ROOT) == []

    successor = CertificateAuthority.create("CSMS CA 2")  # activated again with another CA
    write(files.certificates[0].path, successor.pem + csms_ca.pem)
    assert await take_in_certificates(certificates, files) == 1
    assert await installed_pems(certificates, CS_ROOT) == [successor.pem]


@pytest.mark.django_db(transaction=True)
async def test_a_root_the_csms_installed_first_stays_the_csms(tmp_path: Path) -> None:
    manufacturer = CertificateAuthority.create("Maker")
    certificates = store()
    await certificates.install(MANUFACTURER_ROOT, manufacturer.pem)  # InstallCertificate
    files = provisioned(tmp_path)
    write(files.certificates[1].path, manufacturer.pem)

    assert await take_in_certificates(certificates, files) == 0
    [kept] = await installed_by_csms(certificates, MANUFACTURER_ROOT)
    assert kept.pem == manufacturer.pem
    assert len(await certificates.installed()) == 1


@pytest.mark.django_db(transaction=True)
async def test_damaged_or_refused_files_are_logged_and_skipped_then_taken_when_fixed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    files = provisioned(tmp_path)
    ca_file = write(files.certificates[0].path, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n"
                                                "-----END CERTIFICATE-----\n")
    issuer = CertificateAuthority.create("Issuer")
    not_a_ca = issuer.issue(new_key().public_key(), "a leaf")
    root_file = write(files.certificates[1].path, pem(not_a_ca))
    certificates = store()
    await write_state(PROVISIONED_STATE, ["written", "by", "something", "else"])

    assert await take_in_certificates(certificates, files) == 0
    assert await certificates.installed() == []
    logged = errors(caplog)
    assert any("record of provisioned certificates" in message for message in logged)
    assert any(f"{ca_file}" in message and "is damaged" in message for message in logged)
    assert any(f"{root_file}" in message and "not a CA certificate" in message for message in logged)

    fixed = CertificateAuthority.create("Fixed")
    write(ca_file, fixed.pem)
    write(root_file, issuer.pem)
    assert await take_in_certificates(certificates, files) == 2
    assert await installed_pems(certificates, CS_ROOT) == [fixed.pem]


@pytest.mark.django_db(transaction=True)
async def test_a_full_store_is_logged_and_tried_again_at_the_next_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = provisioned(tmp_path)
    write(files.certificates[0].path, CertificateAuthority.create("CSMS CA").pem)
    full = CertificateStore(lambda: 0)
    assert await take_in_certificates(full, files) == 0
    assert any("the store is full" in message for message in errors(caplog))
    assert await take_in_certificates(store(), files) == 1


def test_a_provisioned_station_pair_is_checked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca = CertificateAuthority.create()
    identity = StationIdentity(tmp_path / "certs")
    check_station_pair(identity)  # none provisioned: nothing to say
    key = new_key()
    write_pair(identity.folder, "station", [ca.issue(key.public_key(), CHARGE_POINT_ID, client=True)], key)
    check_station_pair(identity)
    assert errors(caplog) == []

    long_ago = datetime.now(UTC) - timedelta(days=10)
    cases = {
        "not the key of the certificate": lambda: write_pair(
            identity.folder, "station", [ca.issue(new_key().public_key(), CHARGE_POINT_ID)], key),
        "expired on": lambda: write_pair(identity.folder, "station", [ca.issue(
            key.public_key(), CHARGE_POINT_ID, valid_from=long_ago, days=1)], key),
        "not an unencrypted PEM private key": lambda: identity.current.key.write_text("garbage"),
        "not a PEM certificate": lambda: identity.current.chain.write_text("garbage"),
    }
    for expected, damage in cases.items():
        caplog.clear()
        damage()
        check_station_pair(identity)
        assert any(expected in message for message in errors(caplog)), expected
    identity.current.chain.unlink()
    caplog.clear()
    check_station_pair(identity)
    assert any("No such file" in message for message in errors(caplog))


# ---- end to end: a freshly activated station connects with profile 2 --------------------------------

async def test_profile_2_connects_with_only_the_provisioned_ca(
        tls_csms, start_ocpp16, service_db: Path, tmp_path: Path) -> None:
    """Nothing installed through OCPP: the CA activation copied to certs/csms-ca.pem is trusted;
    a damaged manufacturer root is logged and the station starts anyway; a restart adds nothing."""
    ca = CertificateAuthority.create("Operator CSMS CA")
    csms = await tls_csms(server_context(ca, tmp_path / "tls"))
    csms.behaviour.basic_auth_passwords[CHARGE_POINT_ID] = bytes.fromhex(AUTHORIZATION_KEY)
    seed_configuration(service_db, SecurityProfile="2", AuthorizationKey=AUTHORIZATION_KEY)
    data = tmp_path / "data"
    write(data / "certs" / "csms-ca.pem", ca.pem)
    write(data / "keys" / "manufacturer-root.pem", "-----BEGIN CERTIFICATE-----\ngarbage\n")

    station = start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification", timeout_s=15)
    assert [handshake.status for handshake in csms.handshakes] == [101]
    listed = await csms.send(CHARGE_POINT_ID, call.GetInstalledCertificateIds(certificate_type=CS_ROOT))
    assert listed.status == "Accepted" and len(listed.certificate_hash_data) == 1
    assert "manufacturer-root.pem is damaged" in station.log()

    await station.stopped()
    start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification", timeout_s=15, count=2)
    listed = await csms.send(CHARGE_POINT_ID, call.GetInstalledCertificateIds(certificate_type=CS_ROOT))
    assert len(listed.certificate_hash_data) == 1
