"""workers/fota/trust.py installed_version: the anti-replay bar is the highest of the FOTA history,
the version file the deb put beside the running code (ops/build-deb.sh) and, for
controller-firmware, the bundle folders installed. Without the version file a station that never
had an update over the air would take a genuinely signed OLD package: the replay the issue names.
Packages are made and checked with the real workers.fota.package code (test_update_job's helpers)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from bus.enums import UpdateKind
from tests.fota.test_update_job import Maker, make_package
from webapp.env import REPO_ROOT, StationEnv
from webapp.station.models import FirmwareUpdate
from workers.fota import package
from workers.fota.errors import PackageRefused, RefusalReason
from workers.fota.keys import UpdateKey, write_update_key
from workers.fota.trust import installed_version, load_trust
from workers.fota.versions import PackageVersion

pytestmark = pytest.mark.django_db
SOFTWARE, FIRMWARE = UpdateKind.SOFTWARE, UpdateKind.CONTROLLER_FIRMWARE


@pytest.fixture
def env(settings, tmp_path: Path, maker: Maker, update_key: UpdateKey) -> StationEnv:
    """A provisioned station whose firmware folder is empty (settings.STATION_ENV, the default)."""
    station = dataclasses.replace(settings.STATION_ENV, data_dir=tmp_path / "data",
                                  firmware_dir=tmp_path / "firmware")
    write_update_key(station.keys_dir / "update.key", update_key)
    (station.keys_dir / "manufacturer-root.pem").write_text(maker.root.pem)
    settings.STATION_ENV = station
    return station


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """/opt/station/app of an installed station: where the debs put VERSION.<kind>."""
    folder = tmp_path / "app"
    folder.mkdir()
    return folder


def installed(kind: UpdateKind, version: str) -> None:
    FirmwareUpdate.objects.create(location="x", kind=kind.value, version=version,
                                  stage=FirmwareUpdate.Stage.INSTALLED)


def bundle(env: StationEnv, name: str, *, manifest: bool = True) -> None:
    folder = env.firmware_dir / name
    folder.mkdir(parents=True)
    if manifest:
        (folder / "manifest.json").write_text("{}")


def v(text: str) -> PackageVersion:
    return PackageVersion.parse(text)


def test_a_signed_old_package_is_refused_by_the_version_file_alone(
        env: StationEnv, app_dir: Path, maker: Maker, update_key: UpdateKey, tmp_path: Path) -> None:
    (app_dir / "VERSION.software").write_text("2.0.0\n")  # activated with 2.0.0, no FOTA history
    trust = load_trust(env)
    for version in ("1.0.0", "2.0.1"):  # genuinely signed, the same maker and key
        make_package(tmp_path, maker, update_key, version=version)

    bar = installed_version(SOFTWARE, env, app_dir=app_dir)
    with pytest.raises(PackageRefused) as refused:
        package.verify(tmp_path / "update-1.0.0.pkg", keys=trust.keys, roots=trust.roots,
                       installed_version=bar)
    newer = package.verify(tmp_path / "update-2.0.1.pkg", keys=trust.keys, roots=trust.roots,
                           installed_version=bar)

    assert bar == v("2.0.0")
    assert refused.value.reason is RefusalReason.NOT_NEWER
    assert "not newer than the installed 2.0.0" in str(refused.value)
    assert newer.header.package_version == v("2.0.1")  # refused for its version only


@pytest.mark.parametrize(("history", "file", "expected"), [
    ("3.0.0", "2.0.0", "3.0.0"),  # updated over the air since the deb that wrote the file...
    ("1.5.0", "2.0.0", "2.0.0"),  # ...or the database is older than the code (restored, reset)
    (None, "2.0.0", "2.0.0"),
    ("3.0.0", None, "3.0.0"),
    (None, None, None),
])
def test_the_highest_of_history_and_version_file_wins(env: StationEnv, app_dir: Path, history: str | None,
                                                      file: str | None, expected: str | None) -> None:
    if history:
        installed(SOFTWARE, history)
    if file:
        (app_dir / "VERSION.software").write_text(file + "\n")

    assert installed_version(SOFTWARE, env, app_dir=app_dir) == (expected and v(expected))


def test_each_kind_reads_its_own_version_file(env: StationEnv, app_dir: Path) -> None:
    (app_dir / "VERSION.software").write_text("5.0.0\n")
    (app_dir / "VERSION.web-configurator").write_text("1.2\n")

    assert installed_version(UpdateKind.WEB_CONFIGURATOR, env, app_dir=app_dir) == v("1.2.0")
    assert installed_version(FIRMWARE, env, app_dir=app_dir) is None


def test_controller_firmware_counts_the_highest_installed_bundle(env: StationEnv, app_dir: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    for name in ("2.0.0", "10.0.0", "latest"):
        bundle(env, name)
    bundle(env, "11.0.0", manifest=False)  # not a bundle: dpkg left an empty folder, say
    installed(FIRMWARE, "9.0.0")

    with caplog.at_level(logging.WARNING, logger="workers.fota.trust"):
        assert installed_version(FIRMWARE, env, app_dir=app_dir) == v("10.0.0")  # compared as numbers
    assert "latest" in caplog.text
    installed(FIRMWARE, "12.0.0")
    assert installed_version(FIRMWARE, env, app_dir=app_dir) == v("12.0.0")
    assert installed_version(SOFTWARE, env, app_dir=app_dir) is None  # bundles are firmware only


def test_the_bundles_default_to_the_stations_firmware_dir(env: StationEnv, app_dir: Path) -> None:
    bundle(env, "3.1.0")  # env is settings.STATION_ENV: what update.py's call without env reads

    assert installed_version(FIRMWARE, app_dir=app_dir) == v("3.1.0")


@pytest.mark.parametrize("content", [b"v2 beta\n", b"", b"\xff\xfe2.0\n", None])
def test_an_unusable_version_file_is_logged_and_ignored(env: StationEnv, app_dir: Path, content: bytes | None,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    path = app_dir / "VERSION.software"
    if content is None:
        path.mkdir()  # unreadable
    else:
        path.write_bytes(content)
    installed(SOFTWARE, "1.1.0")

    with caplog.at_level(logging.WARNING, logger="workers.fota.trust"):
        assert installed_version(SOFTWARE, env, app_dir=app_dir) == v("1.1.0")  # the history still holds
    assert f"version file {path} ignored" in caplog.text


def test_a_development_checkout_has_no_version_file_so_the_history_alone_decides(env: StationEnv) -> None:
    assert not list(REPO_ROOT.glob("VERSION.*"))  # written only into the debs (ops/build-deb.sh)
    installed(SOFTWARE, "1.2.0")

    assert installed_version(SOFTWARE) == v("1.2.0")
