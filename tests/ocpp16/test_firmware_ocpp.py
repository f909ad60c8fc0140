"""UpdateFirmware and SignedUpdateFirmware, the OCPP side (workers/ocpp16/firmware.py,
firmware_signing.py): checked, recorded, answered, handed to the FIRMWARE_UPDATE job at the
retrieve time, and each step the job reports becomes the request's status notification (the
job itself: tests/fota/test_update_job.py). Firmware that cannot be fetched (a closed port
here) is Downloading, then DownloadFailed."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from ocpp.exceptions import OCPPError
from ocpp.v16 import call, call_result

from bus import contract
from bus.enums import UpdateKind
from bus.messages import CommandResult, ExitForUpdateRequest, UpdateHoldReply, UpdateHoldRequest
from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.bus_servers import serving
from tests.support.database import query
from tests.support.tls import CertificateAuthority, Key, new_key, pem
from tests.support.upload_server import UploadServer
from workers.fota import package
from workers.fota.header import MIN_CHUNK_BYTES
from workers.fota.keys import UpdateKey, new_update_key, write_update_key
from workers.fota.versions import PackageVersion
from workers.ocpp16.firmware_signing import check_signing_certificate
from workers.ocpp16.payloads import ocpp_time
from workers.ocpp16.security.certificates import InvalidCertificate
from workers.sim.csms import Csms

MANUFACTURER_ROOT = "ManufacturerRootCertificate"
SIGNATURE = base64.b64encode(b"\x01" * 64).decode()
UNREACHABLE = "127.0.0.1:1"  # nothing listens: every download attempt fails at once


# ---- the signing certificate (firmware_signing.py) ------------------------------------------


@pytest.fixture(scope="module")
def manufacturer() -> CertificateAuthority:
    return CertificateAuthority.create("Manufacturer Root")


def _signer(ca: CertificateAuthority, **options: object) -> x509.Certificate:
    return ca.issue(new_key().public_key(), "Firmware Signer", **options)  # type: ignore[arg-type]


def test_a_signing_certificate_issued_by_an_installed_root_is_trusted(
        manufacturer: CertificateAuthority) -> None:
    signer = _signer(manufacturer)
    assert check_signing_certificate(pem(signer), [manufacturer.certificate], datetime.now(UTC)) == signer


def test_a_signing_certificate_may_come_with_its_intermediate(manufacturer: CertificateAuthority) -> None:
    key = new_key()
    issued = manufacturer.issue(key.public_key(), "Firmware CA", ca=True)
    intermediate = CertificateAuthority("Firmware CA", key, issued)
    signer = _signer(intermediate)
    roots = [manufacturer.certificate]
    assert check_signing_certificate(pem(signer) + intermediate.pem, roots, datetime.now(UTC)) == signer
    with pytest.raises(InvalidCertificate, match="not issued by an installed"):
        check_signing_certificate(pem(signer), roots, datetime.now(UTC))  # intermediate missing


@pytest.mark.parametrize("case, reason", [
    ("wrong root", "not issued by an installed ManufacturerRootCertificate"),
    ("no root", "no ManufacturerRootCertificate is installed"),
    ("expired", "not valid now"),
    ("self-signed", "self-signed"),
    ("garbage", "not a PEM certificate"),
    ("broken PEM", "unreadable PEM"),
])
def test_an_untrusted_signing_certificate_is_refused_saying_why(manufacturer: CertificateAuthority, case: str,
                                                                reason: str) -> None:
    other = CertificateAuthority.create("Someone Else")
    certificate, roots = {
        "wrong root": (pem(_signer(other)), [manufacturer.certificate]),
        "no root": (pem(_signer(manufacturer)), []),
        "expired": (pem(_signer(manufacturer, valid_from=datetime.now(UTC) - timedelta(days=100), days=30)),
                    [manufacturer.certificate]),
        "self-signed": (manufacturer.pem, [manufacturer.certificate]),
        "garbage": ("hello", [manufacturer.certificate]),
        "broken PEM": ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                       [manufacturer.certificate]),
    }[case]
    with pytest.raises(InvalidCertificate, match=reason):
        check_signing_certificate(certificate, roots, datetime.now(UTC))


# ---- over OCPP -------------------------------------------------------------------------------


async def _online(csms: Csms, start_ocpp16, start_jobs):
    process = start_ocpp16(csms.url)
    start_jobs(process)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)
    return process


def _recorded(service_db: Path) -> dict:
    rows = query(service_db, "SELECT value FROM station_ocppstate WHERE name = 'firmware_request'")
    return json.loads(rows[0]["value"]) if rows else {}


def _signed(request_id: int, signing_certificate: str, retrieve_at: datetime) -> call.SignedUpdateFirmware:
    return call.SignedUpdateFirmware(request_id=request_id, retries=1, retry_interval=0, firmware={
        "location": f"https://{UNREACHABLE}/fw-2.1.bin", "retrieveDateTime": ocpp_time(retrieve_at),
        "signingCertificate": signing_certificate, "signature": SIGNATURE})


async def test_update_firmware_that_cannot_be_downloaded_is_reported_download_failed(
        csms: Csms, start_ocpp16, start_jobs, service_db: Path) -> None:
    """OCTT TC_044_2_CS (download failed): empty conf, then Downloading and DownloadFailed after
    the requested attempts; nothing installed is ever claimed."""
    await _online(csms, start_ocpp16, start_jobs)

    answer = await csms.send(CHARGE_POINT_ID, call.UpdateFirmware(
        location=f"ftp://fw:secret@{UNREACHABLE}/fw-2.1.bin", retrieve_date=ocpp_time(datetime.now(UTC)),
        retries=2, retry_interval=0))
    assert answer == call_result.UpdateFirmware()  # the empty conf
    await csms.wait_for_call("FirmwareStatusNotification", count=2, timeout_s=20)
    assert [c.payload for c in csms.calls("FirmwareStatusNotification")] == [
        {"status": "Downloading"}, {"status": "DownloadFailed"}]
    recorded = _recorded(service_db)
    assert (recorded["status"], recorded["done"]) == ("DownloadFailed", True)
    assert recorded["request"]["attempts"] == 2

    await csms.send(CHARGE_POINT_ID, call.TriggerMessage(requested_message="FirmwareStatusNotification"))
    await csms.wait_for_call("FirmwareStatusNotification", count=3)
    assert csms.calls("FirmwareStatusNotification")[-1].payload == {"status": "Idle"}  # nothing in progress


async def test_a_request_for_later_waits_for_its_time_even_across_a_restart(
        csms: Csms, start_ocpp16, start_jobs, service_db: Path) -> None:
    process = await _online(csms, start_ocpp16, start_jobs)
    retrieve_at = datetime.now(UTC) + timedelta(seconds=4)
    await csms.send(CHARGE_POINT_ID, call.UpdateFirmware(location=f"https://{UNREACHABLE}/fw.bin",
                                                         retrieve_date=ocpp_time(retrieve_at), retries=1))
    assert await process.stopped() == 0
    assert not csms.calls("FirmwareStatusNotification") and _recorded(service_db)["job_id"] is None

    start_ocpp16(csms.url)
    reported = await csms.wait_for_call("FirmwareStatusNotification", count=2, timeout_s=20)
    assert reported.payload == {"status": "DownloadFailed"}
    assert csms.calls("FirmwareStatusNotification")[0].payload == {"status": "Downloading"}
    assert csms.calls("FirmwareStatusNotification")[0].at >= retrieve_at


async def test_signed_update_checks_the_signing_certificate_against_the_manufacturer_root(
        csms: Csms, start_ocpp16, start_jobs, manufacturer: CertificateAuthority) -> None:
    """OCTT TC_080_CS (OCPP side): a certificate of the installed root -> Accepted; one of
    another root -> InvalidCertificate and the security event InvalidFirmwareSigningCertificate.
    Then plain UpdateFirmware -> NotSupported (L01.FR.20)."""
    await _online(csms, start_ocpp16, start_jobs)
    installed = await csms.send(CHARGE_POINT_ID, call.InstallCertificate(certificate_type=MANUFACTURER_ROOT,
                                                                         certificate=manufacturer.pem))
    assert str(installed.status) == "Accepted"

    wrong = await csms.send(CHARGE_POINT_ID, _signed(1, pem(_signer(CertificateAuthority.create("Other"))),
                                                     datetime.now(UTC)))
    assert str(wrong.status) == "InvalidCertificate"
    event = await csms.wait_for_call("SecurityEventNotification", count=2)  # after StartupOfTheDevice
    assert event.payload["type"] == "InvalidFirmwareSigningCertificate"

    later = await csms.send(CHARGE_POINT_ID, _signed(2, pem(_signer(manufacturer)),
                                                     datetime.now(UTC) + timedelta(hours=1)))
    assert str(later.status) == "Accepted"
    scheduled = await csms.wait_for_call("SignedFirmwareStatusNotification")
    assert scheduled.payload == {"status": "DownloadScheduled", "requestId": 2}
    now = await csms.send(CHARGE_POINT_ID, _signed(3, pem(_signer(manufacturer)), datetime.now(UTC)))
    assert str(now.status) == "AcceptedCanceled"
    await csms.wait_for_call("SignedFirmwareStatusNotification", count=3, timeout_s=20)
    assert [c.payload for c in csms.calls("SignedFirmwareStatusNotification")][1:] == [
        {"status": "Downloading", "requestId": 3}, {"status": "DownloadFailed", "requestId": 3}]

    with pytest.raises(OCPPError) as refused:
        await csms.send(CHARGE_POINT_ID, call.UpdateFirmware(location=f"https://{UNREACHABLE}/fw.bin",
                                                             retrieve_date=ocpp_time(datetime.now(UTC))))
    assert refused.value.code == "NotSupported"
    await csms.send(CHARGE_POINT_ID,
                    call.ExtendedTriggerMessage(requested_message="FirmwareStatusNotification"))
    triggered = await csms.wait_for_call("SignedFirmwareStatusNotification", count=4)
    assert triggered.payload == {"status": "DownloadFailed", "requestId": 3}  # the last status (L01)
    assert not csms.calls("FirmwareStatusNotification")


async def test_bad_firmware_requests_get_a_clear_answer(csms: Csms, start_ocpp16, start_jobs,
                                                        service_db: Path) -> None:
    """Also: a damaged record of an earlier request is dropped, not a reason to stop."""
    query(service_db, "INSERT INTO station_ocppstate (name, value, changed_at) "
                      "VALUES ('firmware_request', '{\"from\": \"another version\"}', datetime('now'))")
    await _online(csms, start_ocpp16, start_jobs)
    for request, code in [
        (call.UpdateFirmware(location="https://updates.example.com/fw.bin", retrieve_date="soon"),
         ("FormationViolation", "FormatViolation")),
        (call.UpdateFirmware(location="sftp://updates.example.com/fw.bin",
                             retrieve_date=ocpp_time(datetime.now(UTC))), ("PropertyConstraintViolation",)),
        (call.UpdateFirmware(location="https://updates.example.com/fw.bin",
                             retrieve_date=ocpp_time(datetime.now(UTC)), retries=-1),
         ("PropertyConstraintViolation",)),
    ]:
        with pytest.raises(OCPPError) as refused:
            await csms.send(CHARGE_POINT_ID, request)
        assert refused.value.code in code

    garbage = await csms.send(CHARGE_POINT_ID, _signed(9, "not a certificate", datetime.now(UTC)))
    assert str(garbage.status) == "InvalidCertificate"  # (no manufacturer root either)
    assert _recorded(service_db) == {} and not csms.calls("FirmwareStatusNotification")
    await csms.send(CHARGE_POINT_ID, call.TriggerMessage(requested_message="FirmwareStatusNotification"))
    assert (await csms.wait_for_call("FirmwareStatusNotification")).payload == {"status": "Idle"}


# ---- with a real package ---------------------------------------------------------------------


def _provision(data_dir: Path, root: CertificateAuthority) -> tuple[UpdateKey, Key, x509.Certificate]:
    """What activation puts on a station: the update key and the manufacturer root."""
    key = new_update_key()
    write_update_key(data_dir / "keys" / "update.key", key)
    (data_dir / "keys" / "manufacturer-root.pem").write_text(root.pem)
    signing_key = new_key()
    return key, signing_key, root.issue(signing_key.public_key(), "Firmware Signer")  # type: ignore[arg-type]


def _package(folder: Path, key: UpdateKey, signing_key: Key, certificate: x509.Certificate) -> bytes:
    source = folder / "src"
    source.mkdir()
    (source / "station_9.0.0_all.deb").write_bytes(b"!<arch>\n" + b"\x00" * 2000)
    package.pack(source, folder / "fw.pkg", kind=UpdateKind.SOFTWARE, version=PackageVersion.parse("9.0.0"),
                 key=key, signing_key=signing_key, certificates=[certificate], chunk_size=MIN_CHUNK_BYTES)
    return (folder / "fw.pkg").read_bytes()


async def test_update_firmware_is_downloaded_and_installed_when_idle(
        csms: Csms, start_ocpp16, start_jobs, tmp_path: Path, upload_server: UploadServer) -> None:
    """OCTT TC_044_1_CS: Downloading, Downloaded, Installing, Installed; smartw's hold and
    chargepoint's exit are played here (start.sh's status file written on the exit)."""
    root = CertificateAuthority.create("Manufacturer Root")
    upload_server.files["/fw.pkg"] = _package(tmp_path, *_provision(tmp_path / "data", root))
    exits: list[str] = []

    async def exit_for_update(request: ExitForUpdateRequest) -> CommandResult:
        exits.append(request.kind.value)
        status = tmp_path / "data" / "packages" / "status"
        status.mkdir(parents=True, exist_ok=True)
        (status / "software.json").write_text(json.dumps({
            "kind": "software", "stage": "install", "result": "ok", "message": "installed 1 package(s)",
            "time": datetime.now(UTC).isoformat(timespec="seconds"), "packages": []}))
        return CommandResult(accepted=True, reason="stopping")

    async def hold(request: UpdateHoldRequest) -> UpdateHoldReply:
        return UpdateHoldReply(granted=True)

    await _online(csms, start_ocpp16, start_jobs)
    async with serving("smartw", {contract.UPDATE_HOLD: hold}), \
            serving("chargepoint", {contract.EXIT_FOR_UPDATE: exit_for_update}):
        await csms.send(CHARGE_POINT_ID, call.UpdateFirmware(location=f"{upload_server.url}/fw.pkg",
                                                             retrieve_date=ocpp_time(datetime.now(UTC))))
        await csms.wait_for_call("FirmwareStatusNotification", count=4, timeout_s=30)
    assert [c.payload["status"] for c in csms.calls("FirmwareStatusNotification")] == [
        "Downloading", "Downloaded", "Installing", "Installed"]
    assert exits == ["software"]
    event = await csms.wait_for_call("SecurityEventNotification", count=2)  # after StartupOfTheDevice
    assert event.payload["type"] == "FirmwareUpdated"


async def test_a_tampered_signed_firmware_is_invalid_signature_with_a_security_event(
        csms: Csms, start_ocpp16, start_jobs, tmp_path: Path, upload_server: UploadServer,
        manufacturer: CertificateAuthority) -> None:
    """OCTT TC_081_CS (invalid signature): Downloading, Downloaded, InvalidSignature and the
    security event InvalidFirmwareSignature; nothing is staged or installed."""
    key, signing_key, certificate = _provision(tmp_path / "data", manufacturer)
    content = bytearray(_package(tmp_path, key, signing_key, certificate))
    content[len(content) // 2] ^= 0x01
    upload_server.files["/fw.pkg"] = bytes(content)
    await _online(csms, start_ocpp16, start_jobs)
    await csms.send(CHARGE_POINT_ID, call.InstallCertificate(certificate_type=MANUFACTURER_ROOT,
                                                             certificate=manufacturer.pem))

    answer = await csms.send(CHARGE_POINT_ID, call.SignedUpdateFirmware(
        request_id=7, retries=1, retry_interval=0, firmware={
            "location": f"{upload_server.url}/fw.pkg", "retrieveDateTime": ocpp_time(datetime.now(UTC)),
            "signingCertificate": pem(certificate), "signature": SIGNATURE}))
    assert str(answer.status) == "Accepted"
    await csms.wait_for_call("SignedFirmwareStatusNotification", count=3, timeout_s=30)
    assert [c.payload for c in csms.calls("SignedFirmwareStatusNotification")] == [
        {"status": status, "requestId": 7} for status in ("Downloading", "Downloaded", "InvalidSignature")]
    event = await csms.wait_for_call("SecurityEventNotification", count=2)  # after StartupOfTheDevice
    assert event.payload["type"] == "InvalidFirmwareSignature"
    assert not (tmp_path / "data" / "packages" / "staged" / "software").exists()
