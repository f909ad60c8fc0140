"""Over-the-air software update end to end, through the real ops/start.sh, with power cuts.

The whole station runs as in the field: ops/start.sh runs `chargepoint --sim`, installs the
staged deb with the real dpkg (into a throw-away root, tests/support/debs.py) when chargepoint
exits for the update, and starts it again. A CSMS (workers/sim/csms.py) sends UpdateFirmware for
an encrypted, signed package (workers.fota.package.pack of a tiny station-software deb) that an
HTTP server of the test serves with Range; the station was provisioned with the update key and
the manufacturer root. A power cut is SIGKILL of every process of the station at once (and Redis
forgets everything); start.sh is then started again on the same data folder and database.

What must hold: the update ends Installed (reported at least once, InstallationFailed never) with
the new deb installed whichever stage the power went at (download in progress, downloaded,
waiting for idle while an EV charges, dpkg running, after the restart before Installed was
reported); an EV charging delays the install until it leaves; a deb whose postinst fails is
InstallationFailed and start.sh puts the previous version back.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography import x509
from ocpp.v16 import call

from bus import contract
from bus.enums import ConnectorStatus, UpdateKind
from tests.e2e.conftest import CHARGE_POINT_ID, METER_VALUE_SAMPLE_INTERVAL_S
from tests.e2e.helpers import CARD, sim
from tests.e2e.ocpp_steps import calls_after, mark, plug_and_swipe
from tests.support.database import query, sqlite_url
from tests.support.debs import DpkgRoot, PausingDpkg, build_deb, path_with_sbin
from tests.support.station import StartShStation, launch_via_start_sh
from tests.support.tls import CertificateAuthority, Key, new_key
from tests.support.upload_server import UploadServer
from tests.support.waiting import async_wait_until
from workers.fota import package
from workers.fota.keys import UpdateKey, new_update_key, write_update_key
from workers.fota.versions import PackageVersion
from workers.ocpp16.payloads import ocpp_time
from workers.sim.csms import Csms

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PACKAGE = "station-software"
KIND = UpdateKind.SOFTWARE.value
VERSION_FILE = "opt/station/software/version"
PADDING_BYTES = 384 * 1024  # random, so the deb and the package are this big: a download to cut
THROTTLED_BYTES_PER_S = 96 * 1024  # about 4 s for the whole package
STAGE_TIMEOUT_S = 90.0  # a stage that spans a station restart
WAITING_FOR_CONNECTOR_1 = "waiting to install: connector(s) 1 charging"  # the job's log lines
HOLD_GRANTED = "smartw holds the station to install"


# ---- keys, debs and packages (made once) ---------------------------------------------------------


@dataclass(frozen=True)
class Maker:
    """The manufacturer: its root (provisioned in the station) and the key that signs packages."""

    root: CertificateAuthority
    key: Key
    chain: list[x509.Certificate]


@dataclass(frozen=True)
class Release:
    version: str
    deb: Path
    package: bytes


@pytest.fixture(scope="module")
def maker() -> Maker:
    root, key = CertificateAuthority.create("Manufacturer Root"), new_key()
    return Maker(root, key, [root.issue(key.public_key(), "Update Signer")])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def update_key() -> UpdateKey:
    return new_update_key()


def _release(folder: Path, maker: Maker, key: UpdateKey, version: str, **scripts: str) -> Release:
    source = folder / f"src-{version}"
    source.mkdir()
    files = {f"/{VERSION_FILE}": version.encode(),
             "/opt/station/software/padding.bin": os.urandom(PADDING_BYTES)}
    deb = build_deb(source, PACKAGE, version, files, scripts)
    for tree in source.glob("*.tree"):
        shutil.rmtree(tree)
    output = folder / f"update-{version}.pkg"
    package.pack(source, output, kind=UpdateKind.SOFTWARE, version=PackageVersion.parse(version), key=key,
                 signing_key=maker.key, certificates=maker.chain)
    return Release(version, deb, output.read_bytes())


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory, maker: Maker,
             update_key: UpdateKey) -> dict[str, Release]:
    """1.0.0 (installed before the test), 2.0.0 (the update), 3.0.0 (its postinst fails)."""
    folder = tmp_path_factory.mktemp("releases")
    return {"1.0.0": _release(folder, maker, update_key, "1.0.0"),
            "2.0.0": _release(folder, maker, update_key, "2.0.0"),
            "3.0.0": _release(folder, maker, update_key, "3.0.0",
                              postinst="echo 'cannot configure' >&2; exit 1")}


PACKAGE_PATH = "/update.pkg"


def serve(server: UploadServer, content: bytes, *, bytes_per_s: float | None = None) -> str:
    """Serve `content` as the package (optionally slowly); its URL."""
    server.files[PACKAGE_PATH] = content
    server.behaviour.bytes_per_s = bytes_per_s
    return server.url + PACKAGE_PATH

# ---- the station under start.sh ------------------------------------------------------------------


@dataclass
class Field:
    """One provisioned station's data folder, dpkg root, database and its start.sh runs."""

    folder: Path
    data: Path
    dpkg: DpkgRoot
    pausing_dpkg: PausingDpkg
    database: Path
    csms: Csms
    redis: redis.Redis
    station: StartShStation | None = None

    @property
    def packages(self) -> Path:
        return self.data / "packages"

    async def launch(self) -> StartShStation:
        boots = len(self.csms.calls("BootNotification"))
        self.station = await asyncio.to_thread(
            launch_via_start_sh, self.folder, self.csms.url, charge_point_id=CHARGE_POINT_ID,
            STATION_DATA_DIR=str(self.data), DPKG=str(self.pausing_dpkg.script), PATH=path_with_sbin())
        await self.csms.wait_for_call("BootNotification", count=boots + 1, timeout_s=30)
        return self.station

    async def power_cut(self) -> None:
        assert self.station is not None
        await asyncio.to_thread(self.station.power_cut)
        self.redis.flushall()  # Redis keeps nothing over a power cut (ARCHITECTURE: the bus)

    async def restart(self, *, wait: bool = True) -> StartShStation:
        """start.sh again after a power cut; `wait`: until every service beats and BootNotification."""
        assert self.station is not None
        boots = len(self.csms.calls("BootNotification"))
        if not wait:
            self.station = await asyncio.to_thread(self.station.relaunch, wait=False)
            return self.station
        self.station = await asyncio.to_thread(self.station.relaunch)
        await self.csms.wait_for_call("BootNotification", count=boots + 1, timeout_s=30)
        return self.station

    def update_row(self) -> dict[str, Any] | None:
        rows = query(self.database, "SELECT * FROM station_firmwareupdate ORDER BY id DESC LIMIT 1")
        return dict(rows[0]) if rows else None

    def stage(self) -> str | None:
        row = self.update_row()
        return None if row is None else row["stage"]

    def job_log(self) -> str:
        row = self.update_row()
        if row is None or row["job_id"] is None:
            return ""
        return query(self.database, "SELECT log FROM station_jobrecord WHERE id = ?", row["job_id"])[0]["log"]

    def install_status(self) -> dict[str, Any] | None:
        path = self.packages / "status" / f"{KIND}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def listed(self, where: str) -> list[str]:
        return sorted(path.name for path in (self.packages / where / KIND).glob("*.deb"))

    def installed(self) -> tuple[str, str, str]:
        """dpkg's Status and Version of the package, and the version file it put in the root."""
        status = self.dpkg.status(PACKAGE)
        marker = self.dpkg.root / VERSION_FILE
        return status.get("Status", "-"), status.get("Version", "-"), \
            marker.read_text(encoding="utf-8") if marker.exists() else "-"

    def statuses(self) -> list[str]:
        return [received.payload["status"] for received in self.csms.calls("FirmwareStatusNotification")]

    def evidence(self) -> str:
        """What to look at when a wait times out."""
        logs = "".join(path.read_text(encoding="utf-8", errors="replace")[-3000:]
                       for path in sorted(self.folder.glob("start-*.log"))[-2:])
        return (f"row: {self.update_row()}\njob log:\n{self.job_log()}\n"
                f"install status: {self.install_status()}\nstatuses: {self.statuses()}\n"
                f"--- start.sh/chargepoint output (tail) ---\n{logs}")

    async def wait(self, probe: Callable[[], Any], what: str, timeout_s: float = STAGE_TIMEOUT_S) -> Any:
        async def check() -> Any:
            return probe()
        try:
            return await async_wait_until(check, timeout_s=timeout_s, what=what)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.evidence()}") from None

    async def update_firmware(self, location: str) -> None:
        await self.csms.send(CHARGE_POINT_ID, call.UpdateFirmware(location=location,
                                                                   retrieve_date=ocpp_time(datetime.now(UTC))))


def _provision(data: Path, dpkg: DpkgRoot, maker: Maker, key: UpdateKey, installed: Release) -> None:
    """Activation's part (keys) and the factory's (1.0.0 installed, its deb kept for a rollback)."""
    write_update_key(data / "keys" / "update.key", key)
    (data / "keys" / "manufacturer-root.pem").write_text(maker.root.pem, encoding="utf-8")
    subprocess.run([*dpkg.command, "-i", str(installed.deb)], check=True, capture_output=True,
                   env=os.environ | {"PATH": path_with_sbin()})
    kept = data / "packages" / "installed" / KIND
    kept.mkdir(parents=True)
    shutil.copy(installed.deb, kept)


@pytest.fixture
async def field_station(csms: Csms, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
                        tmp_path: Path, maker: Maker, update_key: UpdateKey,
                        releases: dict[str, Release]) -> AsyncIterator[Field]:
    """A provisioned station with 1.0.0 installed, not started yet; stopped (and checked) on teardown."""
    monkeypatch.setenv("OCPP_METER_VALUE_SAMPLE_INTERVAL", METER_VALUE_SAMPLE_INTERVAL_S)
    monkeypatch.setenv("DATABASE_URL", sqlite_url(tmp_path / "station.sqlite3"))
    dpkg = DpkgRoot.create(tmp_path / "dpkg")
    station_field = Field(folder=tmp_path, data=tmp_path / "data", dpkg=dpkg,
                          pausing_dpkg=PausingDpkg.create(tmp_path / "dpkg", dpkg),
                          database=tmp_path / "station.sqlite3", csms=csms, redis=redis_client)
    _provision(station_field.data, dpkg, maker, update_key, releases["1.0.0"])
    yield station_field
    if station_field.station is not None:
        code = await asyncio.to_thread(station_field.station.stop)
        assert code == 0, f"start.sh exited {code} on SIGTERM:\n{station_field.station.output()[-5000:]}"


async def _ends_installed(station_field: Field, version: str) -> None:
    """Installed reported (at least once, InstallationFailed never), the deb installed and moved."""
    await station_field.wait(lambda: "Installed" in station_field.statuses(), "Installed reported")
    assert "InstallationFailed" not in station_field.statuses(), station_field.evidence()
    assert station_field.stage() == "installed", station_field.evidence()
    assert station_field.installed() == ("install ok installed", version, version)
    assert f"{PACKAGE}_{version}_all.deb" in station_field.listed("installed")
    assert station_field.listed("staged") == []
    assert station_field.install_status()["result"] == "ok"  # type: ignore[index]


def _once_each(statuses: list[str]) -> list[str]:
    """The statuses without repeats in a row: a notification in flight when chargepoint stops for
    the install is sent again after the restart (at least once, OCPP's rule for them)."""
    return [status for index, status in enumerate(statuses) if index == 0 or statuses[index - 1] != status]


async def _connector(station: StartShStation, connector_id: int) -> tuple[ConnectorStatus, str] | None:
    state = await asyncio.to_thread(station.bus.get, contract.CONNECTOR, connector_id=connector_id)
    return None if state is None else (state.status, state.info)


# ---- the cases -----------------------------------------------------------------------------------


async def test_an_ev_delays_the_install_start_sh_installs_it_then_a_failing_postinst_is_rolled_back(
        field_station: Field, upload_server: UploadServer, releases: dict[str, Release]) -> None:
    url = serve(upload_server, releases["2.0.0"].package)
    station = await field_station.launch()
    await plug_and_swipe(field_station.csms, station, 1, CARD)
    since = mark(field_station.csms)

    await field_station.update_firmware(url)

    await field_station.wait(lambda: WAITING_FOR_CONNECTOR_1 in field_station.job_log(),
                             "the job waiting for connector 1's session to end")
    assert field_station.statuses() == ["Downloading", "Downloaded"]
    assert field_station.stage() == "waiting_idle"
    assert await _connector(station, 2) == (ConnectorStatus.AVAILABLE, "")  # not held while it waits
    assert calls_after(field_station.csms, since, "StatusNotification", status="Unavailable") == []
    assert field_station.installed()[1] == "1.0.0"
    boots = len(field_station.csms.calls("BootNotification"))

    await sim(station, "unplug", "1")

    await field_station.wait(lambda: HOLD_GRANTED in field_station.job_log(), "the hold, once the EV left")
    await field_station.csms.wait_for_call("BootNotification", count=boots + 1, timeout_s=STAGE_TIMEOUT_S)
    await _ends_installed(field_station, "2.0.0")
    assert _once_each(field_station.statuses()) == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert upload_server.ranges() == [None]
    await asyncio.to_thread(station.wait_running, station.services)  # the station runs the new version

    # 3.0.0's postinst fails: dpkg leaves it half-configured, start.sh puts 2.0.0 back
    url = serve(upload_server, releases["3.0.0"].package)
    boots = len(field_station.csms.calls("BootNotification"))
    await field_station.update_firmware(url)

    await field_station.wait(lambda: "InstallationFailed" in field_station.statuses(), "InstallationFailed")
    assert len(field_station.csms.calls("BootNotification")) == boots + 1  # started again after dpkg
    assert _once_each(field_station.statuses())[4:] == [
        "Downloading", "Downloaded", "Installing", "InstallationFailed"]
    assert field_station.stage() == "failed"
    assert "dpkg" in (field_station.update_row() or {})["error"]
    assert field_station.installed() == ("install ok installed", "2.0.0", "2.0.0")
    status = field_station.install_status()
    assert status is not None and status["result"] == "failed", status
    assert status["rolled_back_to"] == {PACKAGE: "2.0.0"}
    assert field_station.listed("failed") == [f"{PACKAGE}_3.0.0_all.deb"]
    assert field_station.listed("staged") == []
    await asyncio.to_thread(station.wait_running, station.services)

    async def available() -> bool:  # the key may still say 'updating' until the new smartw publishes
        return await _connector(station, 1) == (ConnectorStatus.AVAILABLE, "")
    await async_wait_until(available, timeout_s=30, what="connector 1 Available after the restart")


async def test_power_cuts_while_downloading_and_once_downloaded_end_installed(
        field_station: Field, upload_server: UploadServer, releases: dict[str, Release]) -> None:
    release = releases["2.0.0"]
    url = serve(upload_server, release.package, bytes_per_s=THROTTLED_BYTES_PER_S)
    await field_station.launch()
    await field_station.update_firmware(url)
    downloads = field_station.packages / "downloads"

    def part_size() -> int:
        return sum(path.stat().st_size for path in downloads.glob("*.part")) if downloads.is_dir() else 0
    await field_station.wait(lambda: part_size() > len(release.package) // 3, "a third of the package")
    await field_station.power_cut()
    cut_at = part_size()
    assert field_station.stage() == "downloading"

    await field_station.restart()
    await field_station.wait(lambda: len(upload_server.ranges()) >= 2, "the download resumed")
    resumed_from = int((upload_server.ranges()[1] or "").removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_from <= cut_at, (upload_server.ranges(), cut_at)
    await field_station.wait(lambda: field_station.stage() not in ("scheduled", "downloading"), "downloaded",
                             timeout_s=30)
    await field_station.power_cut()  # under load the job may already be asking for the install
    stage = field_station.stage()
    assert stage in ("downloaded", "verified", "waiting_idle", "installing"), field_station.evidence()

    await field_station.restart()
    await _ends_installed(field_station, "2.0.0")
    assert upload_server.ranges() == [None, f"bytes={resumed_from}-"]
    assert upload_server.sent < 2 * len(release.package)
    assert _once_each(field_station.statuses())[:2] == ["Downloading", "Downloaded"], field_station.evidence()


async def test_power_cuts_while_waiting_for_idle_during_dpkg_and_before_installed_end_installed(
        field_station: Field, upload_server: UploadServer, releases: dict[str, Release]) -> None:
    url = serve(upload_server, releases["2.0.0"].package)
    station = await field_station.launch()
    await plug_and_swipe(field_station.csms, station, 1, CARD)
    await field_station.update_firmware(url)
    await field_station.wait(lambda: WAITING_FOR_CONNECTOR_1 in field_station.job_log(),
                             "the job waiting for connector 1's session to end")

    field_station.pausing_dpkg.arm()
    await field_station.power_cut()  # waiting_idle, an EV charging
    await field_station.restart()  # the session ended with the power (PowerLoss): the station is idle
    await field_station.wait(lambda: field_station.pausing_dpkg.paused, "start.sh running dpkg -i")
    assert (field_station.install_status() or {}).get("result") == "running", field_station.evidence()
    await field_station.power_cut()  # mid-install
    assert field_station.installed()[1] == "1.0.0"

    station = await field_station.restart(wait=False)  # start.sh finishes the install, then chargepoint
    await field_station.wait(lambda: (field_station.install_status() or {}).get("result") == "ok"
                             and station.children(), "the install finished and chargepoint started again")
    reported_before_the_cut = field_station.statuses()
    await field_station.power_cut()  # after the restart, before Installed was reported
    assert "Installed" not in reported_before_the_cut, field_station.evidence()

    await field_station.restart()
    await _ends_installed(field_station, "2.0.0")
    assert upload_server.ranges() == [None]
