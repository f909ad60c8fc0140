"""OCTT's firmware, diagnostics and secure-update cases on the whole simulated station
(`chargepoint --sim`: ocpp16, the jobs service, smartw...) against the test CSMS: the message
sequence each case checks, with real packages (workers.fota.package.pack, keys made here) served
over HTTP and diagnostics received by a real FTP server.

The install restart: chargepoint exits with the update's code (10, software); ops/start.sh's
part (dpkg, then its status file) is played here by moving the staged deb and writing the
status file as start.sh does, then the station is started again on the same database and data
folder. The real start.sh path with dpkg: tests/e2e/test_fota_start_sh.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.v16 import call

from bus.enums import UpdateKind
from tests.e2e.conftest import CHARGE_POINT_ID, METER_VALUE_SAMPLE_INTERVAL_S
from tests.e2e.ocpp_steps import call_after, calls_after, mark
from tests.support.database import query, sqlite_url
from tests.support.ftp_server import FtpServer
from tests.support.station import Station, launch_station
from tests.support.tls import CertificateAuthority, Key, new_key, pem
from tests.support.upload_server import UploadServer
from workers.chargepoint.exit_codes import ExitCode
from workers.fota import package
from workers.fota.header import MIN_CHUNK_BYTES
from workers.fota.keys import new_update_key, write_update_key
from workers.fota.versions import PackageVersion
from workers.ocpp16.payloads import ocpp_time
from workers.sim.csms import Csms

MANUFACTURER_ROOT = "ManufacturerRootCertificate"
DEB_NAME = "station_2.0.0_all.deb"
EXIT_TIMEOUT_S = 60.0  # download, verify, hold and every service stopped


@dataclass
class Provisioned:
    """A station data folder with the update key and manufacturer root, and a package for it."""

    data_dir: Path
    root: CertificateAuthority
    signing_key: Key
    signing_certificate: x509.Certificate
    package: bytes

    def csms_signature(self, content: bytes | None = None) -> str:
        """The CSMS's SignedUpdateFirmware signature over `content` (the package by default)."""
        signed = self.package if content is None else content
        return base64.b64encode(self.signing_key.sign(signed, ec.ECDSA(hashes.SHA256()))).decode()

    @property
    def packages(self) -> Path:
        return self.data_dir / "packages"


@pytest.fixture
def provisioned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Provisioned:
    """What activation provisions (keys/update.key, keys/manufacturer-root.pem) in a data folder
    and a database of this test's own, which every life of the station shares."""
    data_dir = tmp_path / "data"
    update_key, signing_key = new_update_key(), new_key()
    root = CertificateAuthority.create("Manufacturer Root")
    write_update_key(data_dir / "keys" / "update.key", update_key)
    (data_dir / "keys" / "manufacturer-root.pem").write_text(root.pem)
    certificate = root.issue(signing_key.public_key(), "Firmware Signer")
    source = tmp_path / "package-src"
    source.mkdir()
    (source / DEB_NAME).write_bytes(b"!<arch>\n" + b"debian-binary   " + os.urandom(2000))
    output = tmp_path / "update-2.0.0.pkg"
    package.pack(source, output, kind=UpdateKind.SOFTWARE, version=PackageVersion.parse("2.0.0"),
                 key=update_key, signing_key=signing_key, certificates=[certificate],
                 chunk_size=MIN_CHUNK_BYTES)
    monkeypatch.setenv("STATION_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DATABASE_URL", sqlite_url(tmp_path / "station.sqlite3"))
    monkeypatch.setenv("OCPP_METER_VALUE_SAMPLE_INTERVAL", METER_VALUE_SAMPLE_INTERVAL_S)
    return Provisioned(data_dir, root, signing_key, certificate, output.read_bytes())


class Lives:
    """The station's lives in this test: each one a `chargepoint --sim` on the same database
    and data folder. Whatever still runs at the end is stopped (exit code 0 asserted)."""

    def __init__(self, tmp_path: Path, csms: Csms) -> None:
        self.tmp_path, self.csms = tmp_path, csms
        self.all: list[Station] = []

    async def start(self) -> Station:
        folder = self.tmp_path / f"life{len(self.all)}"
        folder.mkdir()
        boots = len(self.csms.calls("BootNotification"))
        station = await asyncio.to_thread(launch_station, folder, self.csms.url,
                                          charge_point_id=CHARGE_POINT_ID)
        self.all.append(station)
        await self.csms.wait_for_call("BootNotification", count=boots + 1, timeout_s=30)
        return station

    def stop(self) -> None:
        for station in self.all:
            running = station.process.poll() is None
            code = station.stop()
            assert not running or code == 0, \
                f"chargepoint exited {code} on SIGTERM:\n{station.output()[-5000:]}"


@pytest.fixture
async def lives(tmp_path: Path, csms: Csms, provisioned: Provisioned, redis_client) -> AsyncIterator[Lives]:
    started = Lives(tmp_path, csms)
    yield started
    await asyncio.to_thread(started.stop)


@pytest.fixture
def served(upload_server: UploadServer, provisioned: Provisioned) -> Iterator[str]:
    upload_server.files["/fw/update-2.0.0.pkg"] = provisioned.package
    yield f"{upload_server.url}/fw/update-2.0.0.pkg"


def statuses(csms: Csms, action: str, since: int = 0) -> list[str]:
    return [c.payload["status"] for c in calls_after(csms, since, action)]


async def exits_for_update(station: Station) -> int:
    return await asyncio.to_thread(station.wait_exit, EXIT_TIMEOUT_S)


def before_restart(sent: list[str]) -> list[str]:
    """The statuses sent before chargepoint exited, without Installing: ocpp16 may be stopped
    before it sends that one, and then sends it (persisted) after the restart, before the
    outcome; the full sequence is checked after the restart."""
    return sent[:-1] if sent[-1:] == ["Installing"] else sent


def play_start_sh(provisioned: Provisioned, result: str, message: str) -> None:
    """What ops/start.sh does on exit code 10: dpkg the staged debs, move them to installed/ (or
    failed/), write packages/status/software.json."""
    staged = provisioned.packages / "staged" / "software"
    debs = sorted(staged.glob("*.deb"))
    assert [deb.name for deb in debs] == [DEB_NAME]
    target = provisioned.packages / ("installed" if result == "ok" else "failed") / "software"
    target.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        deb.rename(target / deb.name)
    status = provisioned.packages / "status"
    status.mkdir(parents=True, exist_ok=True)
    (status / "software.json").write_text(json.dumps({
        "kind": "software", "stage": "install", "result": result, "message": message,
        "time": datetime.now(UTC).isoformat(timespec="seconds"), "packages": [DEB_NAME]}))


def update_rows(station: Station) -> list[dict]:
    path = Path(station.database_url.removeprefix("sqlite:///"))
    return [dict(row) for row in query(path, "SELECT stage, failure, version FROM station_firmwareupdate")]


# ---- firmware management (OCPP 1.6 UpdateFirmware) ---------------------------------------------


@pytest.mark.parametrize("result", ["ok", "failed"])
async def test_update_firmware_downloads_installs_across_the_restart_and_reports_the_outcome(
        csms: Csms, lives: Lives, provisioned: Provisioned, served: str, result: str) -> None:
    """OCTT TC_044_1_CS (download and install: Downloading, Downloaded, Installing, the restart
    with a BootNotification, Installed) and TC_044_3_CS (installation failed: ... Installing,
    InstallationFailed after the restart)."""
    station = await lives.start()

    answer = await csms.send(CHARGE_POINT_ID, call.UpdateFirmware(location=served,
                                                                  retrieve_date=ocpp_time(datetime.now(UTC))))
    assert answer.__class__.__name__ == "UpdateFirmware"  # the empty conf
    assert await exits_for_update(station) == ExitCode.UPDATE_SOFTWARE
    assert before_restart(statuses(csms, "FirmwareStatusNotification")) == ["Downloading", "Downloaded"]
    play_start_sh(provisioned, result, "installed 1 package(s)" if result == "ok"
                  else "install failed: dpkg exited 1 (post-installation script returned exit status 1)")

    since = mark(csms)
    restarted = await lives.start()
    outcome = "Installed" if result == "ok" else "InstallationFailed"
    await call_after(csms, since, "FirmwareStatusNotification", status=outcome)
    assert statuses(csms, "FirmwareStatusNotification") == ["Downloading", "Downloaded", "Installing",
                                                             outcome]
    assert csms.received[since].action == "BootNotification"  # reboot first, then the outcome
    assert update_rows(restarted) == [{"stage": "installed" if result == "ok" else "failed",
                                       "failure": "" if result == "ok" else "InstallationFailed",
                                       "version": "2.0.0"}]
    if result == "ok":
        await call_after(csms, since, "SecurityEventNotification", type="FirmwareUpdated")


async def test_update_firmware_from_a_missing_file_is_download_failed(
        csms: Csms, lives: Lives, upload_server: UploadServer) -> None:
    """OCTT TC_044_2_CS (download failed): the location answers 404 (no retry can help):
    Downloading, DownloadFailed; the station keeps running and nothing is installed."""
    station = await lives.start()

    await csms.send(CHARGE_POINT_ID, call.UpdateFirmware(
        location=f"{upload_server.url}/fw/missing.pkg", retrieve_date=ocpp_time(datetime.now(UTC)),
        retries=2, retry_interval=0))
    await call_after(csms, 0, "FirmwareStatusNotification", status="DownloadFailed")
    assert statuses(csms, "FirmwareStatusNotification") == ["Downloading", "DownloadFailed"]
    assert {fetch.path for fetch in upload_server.fetches} == {"/fw/missing.pkg"}
    station.assert_alive()
    assert update_rows(station)[0]["stage"] == "failed"


# ---- diagnostics ---------------------------------------------------------------------------------


async def test_get_diagnostics_uploads_the_archive_to_the_ftp_server(
        csms: Csms, lives: Lives, ftp_server: FtpServer) -> None:
    """OCTT TC_045_1_CS: GetDiagnostics -> the file name, DiagnosticsStatusNotification
    Uploading, Uploaded, and the archive is on the FTP server."""
    await lives.start()
    now = datetime.now(UTC)

    answer = await csms.send(CHARGE_POINT_ID, call.GetDiagnostics(
        location=ftp_server.url("uploads/"), retries=1, retry_interval=0,
        start_time=ocpp_time(now - timedelta(hours=1)), stop_time=ocpp_time(now)))
    assert answer.file_name

    await call_after(csms, 0, "DiagnosticsStatusNotification", status="Uploaded")
    assert statuses(csms, "DiagnosticsStatusNotification") == ["Uploading", "Uploaded"]
    uploaded = ftp_server.root / "uploads" / answer.file_name
    assert uploaded.is_file() and uploaded.stat().st_size > 0
    assert uploaded.read_bytes()[:2] == b"PK"  # a zip archive


async def test_get_diagnostics_to_a_server_refusing_the_login_is_upload_failed(
        csms: Csms, lives: Lives, ftp_server: FtpServer) -> None:
    """OCTT TC_045_2_CS: every attempt fails (the FTP server refuses the password):
    Uploading, UploadFailed; nothing is stored."""
    await lives.start()

    answer = await csms.send(CHARGE_POINT_ID, call.GetDiagnostics(
        location=ftp_server.url("uploads/", password="wrong"), retries=2, retry_interval=0))
    assert answer.file_name

    await call_after(csms, 0, "DiagnosticsStatusNotification", status="UploadFailed")
    assert statuses(csms, "DiagnosticsStatusNotification") == ["Uploading", "UploadFailed"]
    assert not list((ftp_server.root / "uploads").iterdir())


async def test_get_log_uploads_the_security_log(csms: Csms, lives: Lives, ftp_server: FtpServer) -> None:
    """OCTT TC_079_CS: GetLog(SecurityLog) -> Accepted with a file name, LogStatusNotification
    Uploading, Uploaded with the requestId; the file holds the station's security events."""
    await lives.start()
    await call_after(csms, 0, "SecurityEventNotification", type="StartupOfTheDevice")

    answer = await csms.send(CHARGE_POINT_ID, call.GetLog(
        log={"remote_location": ftp_server.url("uploads/"),
             "oldest_timestamp": ocpp_time(datetime.now(UTC) - timedelta(hours=1))},
        log_type="SecurityLog", request_id=11, retries=1, retry_interval=0))
    assert str(answer.status) == "Accepted" and answer.filename

    await call_after(csms, 0, "LogStatusNotification", status="Uploaded")
    assert [c.payload for c in csms.calls("LogStatusNotification")] == [
        {"status": "Uploading", "requestId": 11}, {"status": "Uploaded", "requestId": 11}]
    uploaded = ftp_server.root / "uploads" / answer.filename
    assert "StartupOfTheDevice" in uploaded.read_text()


# ---- secure firmware update (Security Whitepaper L01) -------------------------------------------


async def signed_update(csms: Csms, provisioned: Provisioned, location: str, signature: str) -> None:
    await csms.send(CHARGE_POINT_ID, call.InstallCertificate(certificate_type=MANUFACTURER_ROOT,
                                                             certificate=provisioned.root.pem))
    answer = await csms.send(CHARGE_POINT_ID, call.SignedUpdateFirmware(
        request_id=42, retries=1, retry_interval=0, firmware={
            "location": location, "retrieveDateTime": ocpp_time(datetime.now(UTC)),
            "signingCertificate": pem(provisioned.signing_certificate), "signature": signature}))
    assert str(answer.status) == "Accepted"


def signed_statuses(csms: Csms, since: int = 0) -> list[str]:
    calls = calls_after(csms, since, "SignedFirmwareStatusNotification")
    assert all(c.payload["requestId"] == 42 for c in calls)
    return [c.payload["status"] for c in calls]


async def test_signed_update_firmware_with_a_valid_signature_is_verified_and_installed(
        csms: Csms, lives: Lives, provisioned: Provisioned, served: str) -> None:
    """OCTT TC_080_CS (secure firmware update): Downloading, Downloaded, SignatureVerified,
    Installing, the restart, Installed; the security event FirmwareUpdated."""
    station = await lives.start()

    await signed_update(csms, provisioned, served, provisioned.csms_signature())
    assert await exits_for_update(station) == ExitCode.UPDATE_SOFTWARE
    assert before_restart(signed_statuses(csms)) == ["Downloading", "Downloaded", "SignatureVerified"]
    assert not csms.calls("FirmwareStatusNotification")  # a signed request hears only the signed one
    play_start_sh(provisioned, "ok", "installed 1 package(s)")

    since = mark(csms)
    await lives.start()
    await call_after(csms, since, "SignedFirmwareStatusNotification", status="Installed")
    assert signed_statuses(csms) == ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                                     "Installed"]
    await call_after(csms, since, "SecurityEventNotification", type="FirmwareUpdated")


async def test_signed_update_firmware_with_an_invalid_signature_is_never_installed(
        csms: Csms, lives: Lives, provisioned: Provisioned, served: str) -> None:
    """OCTT TC_081_CS (invalid signature): the file is a genuine package but the CSMS's
    signature is not over it: Downloading, Downloaded, InvalidSignature, the security event
    InvalidFirmwareSignature; nothing staged or installed, the station keeps running."""
    station = await lives.start()

    await signed_update(csms, provisioned, served, provisioned.csms_signature(b"another file"))
    await call_after(csms, 0, "SignedFirmwareStatusNotification", status="InvalidSignature")
    assert signed_statuses(csms) == ["Downloading", "Downloaded", "InvalidSignature"]
    await call_after(csms, 0, "SecurityEventNotification", type="InvalidFirmwareSignature")
    assert update_rows(station) == [{"stage": "failed", "failure": "InvalidSignature", "version": "2.0.0"}]
    assert not list((provisioned.packages / "staged").glob("*/*"))
    assert not (provisioned.packages / "installed").exists()
    station.assert_alive()
