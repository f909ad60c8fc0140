"""The FIRMWARE_UPDATE job (workers/fota/update.py) with real parts: packages made with
workers.fota.package.pack and keys made here, downloaded from a real HTTP server, progress on
the real bus, smartw's UPDATE_HOLD and chargepoint's EXIT_FOR_UPDATE played by bus servers of
the test (in a thread with its own event loop: the job is synchronous and runs here).
ops/start.sh's part is played by writing its status file when the exit is asked for."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from bus import contract
from bus.enums import UpdateKind
from bus.messages import (
    CommandResult,
    ExitForUpdateRequest,
    FileTransferProgress,
    FlashControllerReply,
    FlashControllerRequest,
    TransferStatus,
    UpdateHoldReply,
    UpdateHoldRequest,
)
from tests.support.bus_servers import serving
from tests.support.tls import CertificateAuthority, Key, new_key
from tests.support.transfers import transfer_steps
from tests.support.upload_server import UploadServer
from webapp.env import EnvError, StationEnv
from webapp.station.models import FirmwareUpdate, InstalledCertificate, JobRecord
from workers.fota import package, update
from workers.fota.header import MIN_CHUNK_BYTES
from workers.fota.keys import UpdateKey, new_update_key, write_update_key
from workers.fota.storage import PackageStore
from workers.fota.versions import PackageVersion
from workers.jobs import runner
from workers.jobs.base import JobKind
from workers.jobs.firmware import FirmwareRequest

pytestmark = pytest.mark.django_db
Stage = FirmwareUpdate.Stage
DEB = b"!<arch>\n" + b"debian-binary   " + os.urandom(3000)  # what dpkg would get; start.sh is played
HAPPY = [TransferStatus.DOWNLOADING, TransferStatus.DOWNLOADED, TransferStatus.SIGNATURE_VERIFIED,
         TransferStatus.INSTALLING, TransferStatus.INSTALLED]


@dataclass
class Maker:
    root: CertificateAuthority
    key: Key
    chain: list[x509.Certificate]


def _maker(name: str = "Manufacturer Root") -> Maker:
    root, key = CertificateAuthority.create(name), new_key()
    return Maker(root, key, [root.issue(key.public_key(), "Update Signer")])  # type: ignore[arg-type]


@pytest.fixture
def env(settings, tmp_path: Path, maker: Maker, update_key: UpdateKey, monkeypatch) -> StationEnv:
    """A provisioned station's data folder (update key, manufacturer root) and quick waits."""
    station = dataclasses.replace(settings.STATION_ENV, data_dir=tmp_path / "data", fota_keep_packages=2,
                                  firmware_dir=tmp_path / "firmware")
    write_update_key(station.keys_dir / "update.key", update_key)
    (station.keys_dir / "manufacturer-root.pem").write_text(maker.root.pem)
    settings.STATION_ENV = station
    monkeypatch.setattr(update, "POLL_S", 0.05)
    monkeypatch.setattr(update, "HOLD_RETRY_S", 0.05)
    monkeypatch.setattr(update, "INSTALL_WAIT_S", 5.0)
    return station


def make_package(folder: Path, maker: Maker, key: UpdateKey, *, version: str = "2.0.0",
                 kind: UpdateKind = UpdateKind.SOFTWARE, deb: bytes = DEB) -> bytes:
    source = folder / f"src-{version}"
    source.mkdir(parents=True, exist_ok=True)
    (source / f"station_{version}_all.deb").write_bytes(deb)
    output = folder / f"update-{version}.pkg"
    package.pack(source, output, kind=kind, version=PackageVersion.parse(version), key=key,
                 signing_key=maker.key, certificates=maker.chain, chunk_size=MIN_CHUNK_BYTES)
    return output.read_bytes()


# ---- the station's side of the bus --------------------------------------------------------------


@dataclass
class Station:
    """smartw's hold and chargepoint's exit, served from a thread; `on_exit` plays start.sh."""

    status_folder: Path
    busy_answers: int = 0  # the first N hold requests find connector 1 charging
    install_result: str | None = "ok"  # what start.sh writes on exit (None: nothing)
    exits: list[UpdateKind] = field(default_factory=list)
    holds: list[UpdateHoldRequest] = field(default_factory=list)
    flashes: list[FlashControllerRequest] = field(default_factory=list)
    flash_error: str | None = None  # every flash fails with this error
    busy_flashes: int = 0  # the first N flash requests find the connector busy
    flash_s: float = 0.0  # how long a flash takes
    exit_reply_lost: bool = False  # chargepoint takes the exit but its answer never arrives
    held: bool = False  # a hold is granted and not released
    held_while_flashing: list[bool] = field(default_factory=list)  # per flash request: `held`

    async def flash(self, request: FlashControllerRequest) -> FlashControllerReply:
        self.flashes.append(request)
        self.held_while_flashing.append(self.held)
        await asyncio.sleep(self.flash_s)
        if len(self.flashes) <= self.busy_flashes:
            return FlashControllerReply(ok=False, attempts_used=0, error="busy", detail="connector 1 charges")
        if self.flash_error is not None:
            return FlashControllerReply(ok=False, attempts_used=request.attempts, error=self.flash_error)
        return FlashControllerReply(ok=True, attempts_used=1, version="3.0.0")

    async def hold(self, request: UpdateHoldRequest) -> UpdateHoldReply:
        self.holds.append(request)
        if request.hold and len([h for h in self.holds if h.hold]) <= self.busy_answers:
            return UpdateHoldReply(granted=False, charging=[1])
        self.held = request.hold
        return UpdateHoldReply(granted=True)

    async def exit(self, request: ExitForUpdateRequest) -> CommandResult:
        self.exits.append(request.kind)
        if self.install_result is not None:
            write_status(self.status_folder, request.kind, self.install_result,
                         "installed 1 package(s)" if self.install_result == "ok" else "dpkg exited 1: broken")
        if self.exit_reply_lost:
            raise ConnectionError("Redis went away as chargepoint stopped")  # the bus answers HandlerError
        return CommandResult(accepted=True, reason="stopping")


def write_status(folder: Path, kind: UpdateKind, result: str, message: str,
                 at: datetime | None = None) -> None:
    """As ops/start.sh's write_status does."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"kind": kind.value, "stage": "install", "result": result,
              "time": (at or datetime.now(UTC)).isoformat(timespec="seconds"), "message": message,
              "packages": ["station_2.0.0_all.deb"]}
    (folder / f"{kind.value}.json").write_text(json.dumps(record))


@pytest.fixture
def station(env: StationEnv, redis_client) -> Iterator[Station]:
    side = Station(env.packages_dir / "status")
    ready, stop = threading.Event(), threading.Event()

    async def serve() -> None:
        smartw = {contract.UPDATE_HOLD: side.hold, contract.FLASH_CONTROLLER: side.flash}
        async with serving("smartw", smartw), \
                serving("chargepoint", {contract.EXIT_FOR_UPDATE: side.exit}):
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.02)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    yield side
    stop.set()
    thread.join(5)


# ---- helpers -------------------------------------------------------------------------------------


def steps(job_id: int) -> list[FileTransferProgress]:
    return transfer_steps(job_id)


def statuses(job_id: int) -> list[TransferStatus]:
    return [step.status for step in steps(job_id)]


def request(location: str, **changes: object) -> FirmwareRequest:
    fields: dict[str, object] = {"location": location, "retrieve_at": datetime.now(UTC), "attempts": 2,
                                 "retry_interval_s": 0}
    return FirmwareRequest(**(fields | changes))  # type: ignore[arg-type]


def run(location: str, **changes: object) -> JobRecord:
    return runner.run_sync(JobKind.FIRMWARE_UPDATE, request(location, **changes).to_params())


def serve_package(server: UploadServer, content: bytes) -> str:
    server.files["/fw/update.pkg"] = content
    return f"http://user:s3cret@{server.host}:{server.port}/fw/update.pkg"


def row(job: JobRecord) -> FirmwareUpdate:
    return FirmwareUpdate.objects.get(job=job)


def staged(env: StationEnv, kind: UpdateKind = UpdateKind.SOFTWARE) -> list[str]:
    folder = PackageStore(env.packages_dir).staged(kind)
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


# ---- the happy path ------------------------------------------------------------------------------


def test_an_update_is_downloaded_verified_staged_and_installed_when_the_station_is_idle(
        env: StationEnv, station: Station, upload_server: UploadServer, maker: Maker,
        update_key: UpdateKey, tmp_path: Path) -> None:
    station.busy_answers = 2
    job = run(serve_package(upload_server, make_package(tmp_path, maker, update_key)))

    assert job.status == JobRecord.Status.FINISHED, job.log
    assert statuses(job.pk) == HAPPY
    update_row = row(job)
    assert (update_row.stage, update_row.kind, update_row.version) == (Stage.INSTALLED, "software", "2.0.0")
    assert update_row.bytes_done == update_row.bytes_total == len(upload_server.files["/fw/update.pkg"])
    assert station.exits == [UpdateKind.SOFTWARE]
    assert len([h for h in station.holds if h.hold]) == 3  # refused twice (charging), then granted
    assert staged(env) == ["station_2.0.0_all.deb"]
    assert (env.data_dir / job.result_file).read_bytes() == upload_server.files["/fw/update.pkg"]
    assert "connector(s) 1 charging" in job.log and "s3cret" not in job.log


def test_install_at_in_the_future_is_reported_install_scheduled_and_waited_for(
        env: StationEnv, station: Station, upload_server: UploadServer, maker: Maker,
        update_key: UpdateKey, tmp_path: Path) -> None:
    install_at = datetime.now(UTC) + timedelta(seconds=1)
    job = run(serve_package(upload_server, make_package(tmp_path, maker, update_key)), install_at=install_at)

    assert job.status == JobRecord.Status.FINISHED, job.log
    assert statuses(job.pk) == [*HAPPY[:3], TransferStatus.INSTALL_SCHEDULED, *HAPPY[3:]]
    installing = next(step for step in steps(job.pk) if step.status == TransferStatus.INSTALLING)
    assert installing.at >= install_at


def test_a_failed_dpkg_is_installation_failed_with_its_message(
        env: StationEnv, station: Station, upload_server: UploadServer, maker: Maker,
        update_key: UpdateKey, tmp_path: Path) -> None:
    station.install_result = "failed"
    job = run(serve_package(upload_server, make_package(tmp_path, maker, update_key)))

    assert job.status == JobRecord.Status.FAILED
    assert statuses(job.pk) == [*HAPPY[:4], TransferStatus.INSTALLATION_FAILED]
    assert "dpkg exited 1: broken" in steps(job.pk)[-1].detail
    assert (row(job).stage, row(job).failure) == (Stage.FAILED, "InstallationFailed")


def test_a_download_that_keeps_failing_is_download_failed(env: StationEnv, station: Station,
                                                          upload_server: UploadServer) -> None:
    job = run(f"{upload_server.url}/missing.pkg")

    assert job.status == JobRecord.Status.FAILED
    assert statuses(job.pk) == [TransferStatus.DOWNLOADING, TransferStatus.DOWNLOAD_FAILED]
    assert steps(job.pk)[-1].failure is not None and not station.exits and not station.holds


# ---- refused packages are never staged -----------------------------------------------------------


def _tampered(data: bytes) -> bytes:
    middle = bytearray(data)
    middle[len(data) // 2] ^= 0x01
    return bytes(middle)


@pytest.mark.parametrize("case, expected", [
    ("tampered", TransferStatus.INVALID_SIGNATURE),
    ("wrong signer", TransferStatus.INVALID_SIGNATURE),
    ("truncated", TransferStatus.INSTALL_VERIFICATION_FAILED),
    ("wrong key", TransferStatus.INSTALL_VERIFICATION_FAILED),
    ("old version", TransferStatus.INSTALL_VERIFICATION_FAILED),
    ("garbage", TransferStatus.INSTALL_VERIFICATION_FAILED),
])
def test_a_refused_package_is_never_staged_nor_installed(
        env: StationEnv, station: Station, upload_server: UploadServer, maker: Maker,
        update_key: UpdateKey, tmp_path: Path, case: str, expected: TransferStatus) -> None:
    if case == "old version":
        earlier = runner.run_sync(JobKind.HMI_SCREENSHOT, {})  # any row: the installed 2.1.0's job
        FirmwareUpdate.objects.create(job=earlier, location="x", kind="software", version="2.1.0",
                                      stage=Stage.INSTALLED)
    good = make_package(tmp_path, maker, update_key)
    content = {
        "tampered": lambda: _tampered(good),
        "wrong signer": lambda: make_package(tmp_path / "other", _maker("Someone Else"), update_key),
        "truncated": lambda: good[:-100],
        "wrong key": lambda: make_package(tmp_path / "other", maker, new_update_key()),
        "old version": lambda: good,
        "garbage": lambda: os.urandom(5000),
    }[case]()
    job = run(serve_package(upload_server, content))

    assert job.status == JobRecord.Status.FAILED
    assert statuses(job.pk)[-1] == expected
    assert TransferStatus.SIGNATURE_VERIFIED not in statuses(job.pk)
    assert staged(env) == [] and not station.exits and not station.holds
    assert row(job).stage == Stage.FAILED and row(job).failure == expected.value


# ---- resume: every persisted stage continues -----------------------------------------------------


def _resumable(env: StationEnv, location: str, stage: Stage, **fields: object) -> JobRecord:
    """A job left in `stage` by a station that lost power (the runner re-queued it)."""
    record = JobRecord.objects.create(kind=JobKind.FIRMWARE_UPDATE, params=request(location).to_params())
    FirmwareUpdate.objects.create(job=record, location=location, stage=stage, **fields)
    return record


@pytest.mark.parametrize("stage", [Stage.SCHEDULED, Stage.DOWNLOADING, Stage.DOWNLOADED, Stage.VERIFIED,
                                   Stage.WAITING_IDLE])
def test_a_job_resumes_from_its_persisted_stage(
        env: StationEnv, station: Station, upload_server: UploadServer, maker: Maker,
        update_key: UpdateKey, tmp_path: Path, stage: Stage) -> None:
    content = make_package(tmp_path, maker, update_key)
    location = serve_package(upload_server, content)
    store = PackageStore(env.packages_dir)
    record = _resumable(env, location, stage)
    update_row = FirmwareUpdate.objects.get(job=record)
    fields: dict[str, object] = {}
    if stage == Stage.DOWNLOADING:  # half of it arrived before the power cut
        store.downloads.mkdir(parents=True)
        store.download_file(update_row.pk).write_bytes(content[:len(content) // 2])
        fields = {"bytes_done": len(content) // 2}
    elif stage != Stage.SCHEDULED:
        store.downloads.mkdir(parents=True)
        done = store.download_file(update_row.pk).with_suffix(".pkg")
        done.write_bytes(content)
        fields = {"package_file": str(done.relative_to(env.data_dir)), "kind": "software", "version": "2.0.0"}
        if stage != Stage.DOWNLOADED:
            keys = {update_key.key_id: update_key}
            verified = package.verify(done, keys=keys, roots=[maker.root.certificate])
            package.extract(verified, keys, store.staged(UpdateKind.SOFTWARE))
    FirmwareUpdate.objects.filter(pk=update_row.pk).update(**fields)

    runner.execute(record)

    record.refresh_from_db()
    assert record.status == JobRecord.Status.FINISHED, record.log
    assert "resuming the update at stage" in record.log
    assert statuses(record.pk)[-2:] == [TransferStatus.INSTALLING, TransferStatus.INSTALLED]
    assert station.exits == [UpdateKind.SOFTWARE]
    if stage == Stage.DOWNLOADING:
        assert upload_server.fetches[-1].headers.get("Range") == f"bytes={len(content) // 2}-"
    if stage in (Stage.VERIFIED, Stage.WAITING_IDLE):
        assert not upload_server.fetches  # nothing downloaded again


def test_after_the_install_restart_the_status_file_says_installed(
        env: StationEnv, station: Station, tmp_path: Path) -> None:
    stage_at = datetime.now(UTC) - timedelta(seconds=30)
    record = _resumable(env, "http://example.com/fw.pkg", Stage.INSTALLING, kind="software", version="2.0.0")
    FirmwareUpdate.objects.filter(job=record).update(stage_changed_at=stage_at)
    write_status(env.packages_dir / "status", UpdateKind.SOFTWARE, "ok", "installed 1 package(s)",
                 at=stage_at + timedelta(seconds=10))

    runner.execute(record)

    record.refresh_from_db()
    assert record.status == JobRecord.Status.FINISHED, record.log
    assert statuses(record.pk) == [TransferStatus.INSTALLED] and not station.exits


@pytest.mark.parametrize("result, ending", [("failed", TransferStatus.INSTALLATION_FAILED),
                                            ("running", TransferStatus.INSTALLATION_FAILED)])
def test_after_the_install_restart_a_failed_or_unfinished_install_is_installation_failed(
        env: StationEnv, station: Station, result: str, ending: TransferStatus) -> None:
    stage_at = datetime.now(UTC) - timedelta(seconds=30)
    record = _resumable(env, "http://example.com/fw.pkg", Stage.INSTALLING, kind="software", version="2.0.0")
    FirmwareUpdate.objects.filter(job=record).update(stage_changed_at=stage_at)
    write_status(env.packages_dir / "status", UpdateKind.SOFTWARE, result, "dpkg exited 2: conflicts",
                 at=stage_at + timedelta(seconds=10))

    runner.execute(record)

    record.refresh_from_db()
    assert record.status == JobRecord.Status.FAILED
    assert statuses(record.pk) == [ending] and "dpkg exited 2: conflicts" in steps(record.pk)[0].detail


def test_an_old_status_file_is_ignored_and_an_install_that_never_happened_is_asked_again(
        env: StationEnv, station: Station, maker: Maker, update_key: UpdateKey, tmp_path: Path) -> None:
    record = _resumable(env, "http://example.com/fw.pkg", Stage.INSTALLING, kind="software", version="2.0.0")
    write_status(env.packages_dir / "status", UpdateKind.SOFTWARE, "failed", "an earlier update",
                 at=datetime.now(UTC) - timedelta(days=1))
    folder = PackageStore(env.packages_dir).staged(UpdateKind.SOFTWARE)
    folder.mkdir(parents=True)
    (folder / "station_2.0.0_all.deb").write_bytes(DEB)

    runner.execute(record)

    record.refresh_from_db()
    assert record.status == JobRecord.Status.FINISHED, record.log
    assert station.exits == [UpdateKind.SOFTWARE]  # asked again, after a new hold
    assert statuses(record.pk) == [TransferStatus.INSTALLING, TransferStatus.INSTALLED]


@pytest.mark.parametrize("flash_error", [None, "upload_failed"])
def test_installed_controller_firmware_is_flashed_before_it_is_installed(
        env: StationEnv, station: Station, flash_error: str | None) -> None:
    """After start.sh installed the bundle's deb, update_controllers flashes from its folder;
    Installed only once every controller is flashed, else InstallationFailed with its code."""
    station.flash_error = flash_error
    record, bundle = _installed_bundle(env)

    runner.execute(record)

    record.refresh_from_db()
    assert [request.connector_id for request in station.flashes] == [1]
    assert Path(station.flashes[0].image_path) == bundle / "dc.bin"
    flash_job = FirmwareUpdate.objects.get(job=record).flash_job
    assert flash_job is not None and flash_job.kind == JobKind.UPDATE_CONTROLLERS
    if flash_error is None:
        assert record.status == JobRecord.Status.FINISHED, record.log
        assert statuses(record.pk) == [TransferStatus.INSTALLED]
    else:
        assert record.status == JobRecord.Status.FAILED
        assert statuses(record.pk) == [TransferStatus.INSTALLATION_FAILED]
        assert "connector 1: upload_failed" in steps(record.pk)[0].detail


def _installed_bundle(env: StationEnv) -> tuple[JobRecord, Path]:
    """A controller-firmware update start.sh installed (bundle 3.0.0 for connector 1) before the
    restart: the job's next run flashes."""
    bundle = env.firmware_dir / "3.0.0"
    bundle.mkdir(parents=True)
    image = b"\x5a" * 4096
    (bundle / "dc.bin").write_bytes(image)
    target = {"connector_ids": [1], "file": "dc.bin", "version": "3.0.0",
              "sha256": hashlib.sha256(image).hexdigest()}
    (bundle / "manifest.json").write_text(json.dumps({"version": "3.0.0", "controllers": [target]}))
    stage_at = datetime.now(UTC) - timedelta(seconds=30)
    record = _resumable(env, "http://example.com/fw.pkg", Stage.INSTALLING, kind="controller-firmware",
                        version="3.0.0")
    FirmwareUpdate.objects.filter(job=record).update(stage_changed_at=stage_at)
    write_status(env.packages_dir / "status", UpdateKind.CONTROLLER_FIRMWARE, "ok", "installed 1 package(s)",
                 at=stage_at + timedelta(seconds=10))
    return record, bundle


def test_controllers_are_flashed_under_the_hold_and_a_busy_flash_waits_for_idle(
        settings, env: StationEnv, station: Station) -> None:
    """A session starting after the install restart would make smartw answer 'busy': the
    flash runs under UPDATE_HOLD (renewed while it lasts, released after); a 'busy' flash all
    the same is retried once the station is idle. FOTA_FLASH_ATTEMPTS reaches smartw."""
    settings.STATION_ENV = dataclasses.replace(env, fota_flash_attempts=5)
    station.busy_flashes, station.busy_answers, station.flash_s = 1, 1, 0.3
    record, _ = _installed_bundle(env)

    runner.execute(record)

    record.refresh_from_db()
    assert record.status == JobRecord.Status.FINISHED, record.log
    assert statuses(record.pk) == [TransferStatus.INSTALLED]
    assert [request.attempts for request in station.flashes] == [5, 5]  # busy, then flashed
    assert station.held_while_flashing == [True, True]
    assert len([h for h in station.holds if h.hold]) >= 4  # refused once, granted, renewed while flashing
    assert not station.holds[-1].hold  # released after
    assert "smartw was busy" in record.log


def test_a_lost_exit_answer_waits_for_the_install_status(
        env: StationEnv, station: Station, upload_server: UploadServer, maker: Maker,
        update_key: UpdateKey, tmp_path: Path) -> None:
    """chargepoint took the exit (start.sh installs) but its answer was lost: not a failure."""
    station.exit_reply_lost = True
    job = run(serve_package(upload_server, make_package(tmp_path, maker, update_key)))

    assert job.status == JobRecord.Status.FINISHED, job.log
    assert statuses(job.pk) == HAPPY and "answer to the exit was lost" in job.log


def test_a_refused_exit_is_installation_failed(
        env: StationEnv, station: Station, upload_server: UploadServer, maker: Maker,
        update_key: UpdateKey, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(update, "exit_for_update",
                        lambda kind: CommandResult(accepted=False, reason="a session is stopping"))
    job = run(serve_package(upload_server, make_package(tmp_path, maker, update_key)))

    assert job.status == JobRecord.Status.FAILED
    assert statuses(job.pk)[-1] == TransferStatus.INSTALLATION_FAILED
    assert row(job).failure_reason == "no-exit" and not station.holds[-1].hold


def _real_deb(folder: Path, version: str) -> bytes:
    root = folder / f"deb-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: station-controller-firmware\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Test <test@example.com>\nDescription: controller firmware\n")
    output = folder / f"station-controller-firmware_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(output)],
                   check=True, capture_output=True)
    return output.read_bytes()


@pytest.mark.parametrize("deb_version", ["3.0.0", "3.0.1", None])
def test_a_controller_firmware_deb_must_have_the_packages_version(
        env: StationEnv, station: Station, upload_server: UploadServer, maker: Maker,
        update_key: UpdateKey, tmp_path: Path, deb_version: str | None) -> None:
    """The deb installs its bundle into firmware_dir/<deb version>, flashing looks in
    firmware_dir/<package version>: a package where they differ (or whose deb is unreadable) is
    refused before anything is staged."""
    deb = DEB if deb_version is None else _real_deb(tmp_path, deb_version)
    content = make_package(tmp_path, maker, update_key, version="3.0.0", kind=UpdateKind.CONTROLLER_FIRMWARE,
                           deb=deb)
    job = run(serve_package(upload_server, content))

    if deb_version == "3.0.0":
        assert TransferStatus.SIGNATURE_VERIFIED in statuses(job.pk), job.log
        assert station.exits == [UpdateKind.CONTROLLER_FIRMWARE]
        return
    assert job.status == JobRecord.Status.FAILED
    assert statuses(job.pk)[-1] == TransferStatus.INSTALL_VERIFICATION_FAILED
    assert staged(env, UpdateKind.CONTROLLER_FIRMWARE) == [] and not station.exits
    expected = "has version '3.0.1' but the package says 3.0.0" if deb_version else "not a readable deb"
    assert expected in row(job).error


def test_flash_attempts_come_from_the_environment() -> None:
    assert StationEnv.from_environ({}).fota_flash_attempts == 3
    assert StationEnv.from_environ({"FOTA_FLASH_ATTEMPTS": "10"}).fota_flash_attempts == 10
    for bad in ("0", "11", "three"):
        with pytest.raises(EnvError, match="FOTA_FLASH_ATTEMPTS"):
            StationEnv.from_environ({"FOTA_FLASH_ATTEMPTS": bad})


def test_a_download_completed_just_before_a_power_cut_is_not_downloaded_again(
        env: StationEnv, station: Station, upload_server: UploadServer, maker: Maker,
        update_key: UpdateKey, tmp_path: Path) -> None:
    """<id>.part was renamed to <id>.pkg, then the power went before package_file was saved."""
    content = make_package(tmp_path, maker, update_key)
    location = serve_package(upload_server, content)
    record = _resumable(env, location, Stage.DOWNLOADING)
    store = PackageStore(env.packages_dir)
    store.downloads.mkdir(parents=True)
    update_id = FirmwareUpdate.objects.get(job=record).pk
    store.download_file(update_id).with_suffix(".pkg").write_bytes(content)
    FirmwareUpdate.objects.filter(pk=update_id).update(bytes_done=len(content) // 2)

    runner.execute(record)

    record.refresh_from_db()
    assert record.status == JobRecord.Status.FINISHED, record.log
    assert not upload_server.fetches
    assert FirmwareUpdate.objects.get(pk=update_id).bytes_done == len(content)


# ---- keep the last N packages ------------------------------------------------------------------


def test_only_the_newest_packages_are_kept(env: StationEnv, station: Station, upload_server: UploadServer,
                                           maker: Maker, update_key: UpdateKey, tmp_path: Path) -> None:
    store = PackageStore(env.packages_dir)
    old: dict[Path, list[str]] = {store.downloads: [], store.installed(UpdateKind.SOFTWARE): [],
                                  store.failed(UpdateKind.WEB_CONFIGURATOR): []}
    for folder, names in old.items():
        folder.mkdir(parents=True, exist_ok=True)
        for age in range(4):
            path = folder / f"old-{age}.deb"
            path.write_bytes(b"x")
            moment = (datetime.now(UTC) - timedelta(days=age + 1)).timestamp()
            os.utime(path, (moment, moment))
            names.append(path.name)
    for age in (0, 3):  # a partial download's validator sidecar does not count, and goes with its part
        (store.downloads / f"old-{age}.deb.validator").write_text('"etag"')

    job = run(serve_package(upload_server, make_package(tmp_path, maker, update_key)))

    assert job.status == JobRecord.Status.FINISHED, job.log
    downloads = sorted(path.name for path in store.downloads.iterdir())
    assert downloads == sorted([Path(job.result_file).name, "old-0.deb", "old-0.deb.validator"])  # keep 2
    for folder in (store.installed(UpdateKind.SOFTWARE), store.failed(UpdateKind.WEB_CONFIGURATOR)):
        assert sorted(path.name for path in folder.iterdir()) == ["old-0.deb", "old-1.deb"]


def test_a_station_without_provisioned_keys_installs_nothing(
        env: StationEnv, station: Station, upload_server: UploadServer, maker: Maker,
        update_key: UpdateKey, tmp_path: Path) -> None:
    (env.keys_dir / "update.key").unlink()
    job = run(serve_package(upload_server, make_package(tmp_path, maker, update_key)))

    assert job.status == JobRecord.Status.FAILED
    assert statuses(job.pk)[-1] == TransferStatus.INSTALL_VERIFICATION_FAILED
    assert staged(env) == [] and not station.exits
    assert "update.key" in row(job).error  # the reason names the missing file


def test_the_update_key_is_picked_by_key_id_among_the_key_files(
        env: StationEnv, station: Station, upload_server: UploadServer, maker: Maker,
        update_key: UpdateKey, tmp_path: Path) -> None:
    """Key rotation (docs/update-package.md): the next key sits beside update.key."""
    rotated = new_update_key()
    write_update_key(env.keys_dir / f"update-{rotated.key_id}.key", rotated)
    job = run(serve_package(upload_server, make_package(tmp_path, maker, rotated)))

    assert job.status == JobRecord.Status.FINISHED, job.log
    assert statuses(job.pk) == HAPPY


@pytest.mark.parametrize("provisioned_root", [True, False])
def test_a_root_the_csms_installed_never_signs_packages(
        env: StationEnv, station: Station, upload_server: UploadServer, update_key: UpdateKey,
        tmp_path: Path, provisioned_root: bool) -> None:
    """The package's signature is checked against keys/manufacturer-root.pem only; a
    ManufacturerRootCertificate from InstallCertificate is for SignedUpdateFirmware's signing
    certificate (ocpp16)."""
    csms_maker = _maker("Root The CSMS Installed")
    InstalledCertificate.objects.create(certificate_type="ManufacturerRootCertificate",
                                        pem=csms_maker.root.pem, issuer_name_hash="00", issuer_key_hash="00",
                                        serial_number="1")
    if not provisioned_root:
        (env.keys_dir / "manufacturer-root.pem").unlink()
    job = run(serve_package(upload_server, make_package(tmp_path, csms_maker, update_key)))

    assert job.status == JobRecord.Status.FAILED
    assert statuses(job.pk)[-1] == (TransferStatus.INVALID_SIGNATURE if provisioned_root
                                    else TransferStatus.INSTALL_VERIFICATION_FAILED)
    assert staged(env) == [] and not station.exits
