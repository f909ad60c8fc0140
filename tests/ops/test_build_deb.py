"""ops/build-deb.sh: the three packages, built with the real dpkg-deb and read back with it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from bus.enums import UpdateKind

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "ops" / "build-deb.sh"
APP = "./opt/station/app/"
UNIT = "./lib/systemd/system/station-chargepoint.service"
FIRMWARE_IMAGE = b"\x7fstation_dc firmware" * 64


def build(*args: str | Path, epoch: str = "1700000000") -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SOURCE_DATE_EPOCH": epoch}
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def built(*args: str | Path) -> Path:
    result = build(*args)
    assert result.returncode == 0, result.stderr
    deb = Path(result.stdout.strip())
    assert deb.is_file()
    return deb


def fields(deb: Path) -> dict[str, str]:
    control = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    return dict(line.split(": ", 1) for line in control.splitlines() if not line.startswith(" "))


def listing(deb: Path) -> dict[str, str]:
    """Path in the archive -> `mode owner/group`."""
    lines = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    return {line.split()[5]: f"{line.split()[0]} {line.split()[1]}" for line in lines.splitlines()}


def extracted(deb: Path, into: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)
    return into


@pytest.fixture(scope="module")
def software(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built("software", "--version", "1.4.0", "--out", tmp_path_factory.mktemp("out"))


@pytest.fixture(scope="module")
def web_configurator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built("web-configurator", "--version", "1.4.0", "--out", tmp_path_factory.mktemp("out"))


def firmware_input(folder: Path, version: str = "2.1.0", sha256: str | None = None) -> tuple[Path, Path]:
    """A firmware folder (the image and an unlisted file) and a manifest beside it."""
    files = folder / "files"
    (files / "dc").mkdir(parents=True)
    (files / "dc" / "station_dc.bin").write_bytes(FIRMWARE_IMAGE)
    (files / "notes.txt").write_text("not in the manifest\n", encoding="utf-8")
    manifest = folder / "bundle.json"
    manifest.write_text(json.dumps({"version": version, "controllers": [
        {"model": "station_dc", "file": "dc/station_dc.bin", "version": "2.1.0",
         "sha256": sha256 or hashlib.sha256(FIRMWARE_IMAGE).hexdigest()}]}), encoding="utf-8")
    return files, manifest


def test_software_package_declares_what_a_station_needs(software: Path) -> None:
    control = fields(software)

    assert software.name == "station-software_1.4.0_all.deb"
    assert {key: control[key] for key in ("Package", "Version", "Architecture")} == {
        "Package": "station-software", "Version": "1.4.0", "Architecture": "all"}
    assert "<" in control["Maintainer"]
    depends = control["Depends"].split(", ")
    assert {"python3 (>= 3.11)", "redis-server", "chromium | chromium-browser"} <= set(depends)
    assert int(control["Installed-Size"]) > 100


def test_software_package_holds_the_code_and_the_unit_but_no_tests_or_clutter(software: Path) -> None:
    files = listing(software)

    for wanted in ("manage.py", "requirements.txt", "bus/__init__.py", "workers/chargepoint/exit_codes.py",
                   "workers/fota/bundle.py", "webapp/settings.py", "ops/setup-env.sh"):
        assert APP + wanted in files, wanted
    assert files[APP + "ops/start.sh"].startswith("-rwxr-xr-x root/root")
    assert files[UNIT].startswith("-rw-r--r-- root/root")
    assert all(entry.endswith("root/root") for entry in files.values())
    unwanted = ("/tests/", "/.git/", "/.venv/", "/var/", "__pycache__", ".pyc", "/hmi_static/", "/templates/",
                "/ops/packaging/", "build-deb.sh", "test.sh")
    assert [path for path in files if any(part in path for part in unwanted)] == []


def test_the_unit_runs_start_sh_so_chargepoint_stops_the_services(software: Path, tmp_path: Path) -> None:
    unit = (extracted(software, tmp_path) / UNIT).read_text(encoding="utf-8")

    assert "ExecStart=/opt/station/app/ops/start.sh\n" in unit
    assert "KillMode=mixed\n" in unit
    assert "Requires=redis-server.service\n" in unit
    assert "WantedBy=multi-user.target\n" in unit


def test_software_postinst_only_reloads_systemd(software: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-e", str(software), str(tmp_path / "DEBIAN")], check=True)
    postinst = tmp_path / "DEBIAN" / "postinst"

    assert os.access(postinst, os.X_OK)
    script = postinst.read_text(encoding="utf-8")
    assert "systemctl daemon-reload" in script
    assert "systemctl restart" not in script and "systemctl start" not in script


def test_web_configurator_holds_the_screens_and_no_file_of_the_software(
        software: Path, web_configurator: Path) -> None:
    files = listing(web_configurator)
    control = fields(web_configurator)

    assert (control["Package"], control["Depends"]) == ("station-web-configurator", "station-software")
    assert APP + "hmi_static/hmi.js" in files
    assert APP + "webapp/station/templates/station/hmi.html" in files
    assert [path for path in files if path.endswith(".py")] == []
    regular = {path for path, entry in files.items() if entry.startswith("-")}
    assert regular.isdisjoint(listing(software)), "dpkg refuses two packages owning one file"


@pytest.mark.parametrize("kind", ["software", "web-configurator"])
def test_the_app_debs_say_their_version_beside_the_code(software: Path, web_configurator: Path,
                                                        tmp_path: Path, kind: str) -> None:
    """workers/fota/trust.py reads /opt/station/app/VERSION.<kind> as the installed version: the
    replay check of a station that never had an update over the air."""
    deb = {"software": software, "web-configurator": web_configurator}[kind]
    version_file = f"{APP}VERSION.{kind}"
    others = [path for path in listing(deb) if "/VERSION." in path]

    assert others == [version_file]
    assert listing(deb)[version_file].startswith("-rw-r--r-- root/root")
    assert (extracted(deb, tmp_path) / version_file).read_text(encoding="utf-8") == "1.4.0\n"


def test_controller_firmware_holds_the_listed_files_and_the_manifest(tmp_path: Path) -> None:
    files, manifest = firmware_input(tmp_path)

    deb = built("controller-firmware", "--version", "2.1.0", "--out", tmp_path / "out",
                "--firmware-dir", files, "--manifest", manifest)

    assert fields(deb)["Package"] == "station-controller-firmware"
    folder = "./opt/station/firmware/2.1.0/"
    assert sorted(path for path in listing(deb) if path.startswith(folder) and not path.endswith("/")) == [
        folder + "dc/station_dc.bin", folder + "manifest.json"]
    root = extracted(deb, tmp_path / "root")
    assert (root / folder / "dc" / "station_dc.bin").read_bytes() == FIRMWARE_IMAGE


def test_building_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    files, manifest = firmware_input(tmp_path)
    debs = [built("controller-firmware", "--version", "2.1.0", "--out", tmp_path / name,
                  "--firmware-dir", files, "--manifest", manifest) for name in ("one", "two")]
    (files / "dc" / "station_dc.bin").touch()  # a newer mtime must not change the package
    debs.append(built("controller-firmware", "--version", "2.1.0", "--out", tmp_path / "three",
                      "--firmware-dir", files, "--manifest", manifest))
    webs = [built("web-configurator", "--version", "1.0", "--out", tmp_path / name) for name in ("w1", "w2")]
    apps = [built("software", "--version", "1.0", "--out", tmp_path / name) for name in ("s1", "s2")]

    assert debs[0].read_bytes() == debs[1].read_bytes() == debs[2].read_bytes()
    assert webs[0].read_bytes() == webs[1].read_bytes()
    assert apps[0].read_bytes() == apps[1].read_bytes()  # the version files too


@pytest.mark.parametrize(("damage", "complaint"), [
    ("checksum", "SHA-256 is"),
    ("version", "the manifest says version 2.0.9, the package is --version 2.1.0"),
    ("no-folder", "is not a folder"),
    ("no-manifest", "is not a file"),
])
def test_a_bad_firmware_input_fails_with_exit_1(tmp_path: Path, damage: str, complaint: str) -> None:
    files, manifest = firmware_input(
        tmp_path, version="2.0.9" if damage == "version" else "2.1.0",
        sha256="0" * 64 if damage == "checksum" else None)
    if damage == "no-folder":
        files = tmp_path / "missing"
    if damage == "no-manifest":
        manifest = tmp_path / "missing.json"

    result = build("controller-firmware", "--version", "2.1.0", "--out", tmp_path / "out",
                   "--firmware-dir", files, "--manifest", manifest)

    assert (result.returncode, result.stdout) == (1, "")
    assert complaint in result.stderr
    assert list((tmp_path / "out").glob("*.deb")) == []


@pytest.mark.parametrize(("args", "complaint"), [
    ((), "which package?"),
    (("software",), "--version is required"),
    (("software", "--version"), "--version needs a value"),
    (("software", "--version", "v1"), "not a Debian version"),
    (("software", "--version", "1 2"), "not a Debian version"),
    (("firmware", "--version", "1.0"), "unknown argument: firmware"),
    (("software", "web-configurator", "--version", "1.0"), "more than one package kind"),
    (("controller-firmware", "--version", "1.0"), "needs --firmware-dir DIR and --manifest FILE"),
    (("software", "--version", "1.0", "--manifest", "m.json"), "for controller-firmware only"),
])
def test_bad_usage_exits_2_with_the_reason_and_the_usage(args: tuple[str, ...], complaint: str) -> None:
    result = build(*args)

    assert result.returncode == 2
    assert complaint in result.stderr
    assert "usage: ops/build-deb.sh" in result.stderr


def test_a_bad_source_date_epoch_is_bad_usage() -> None:
    result = build("web-configurator", "--version", "1.0", epoch="yesterday")

    assert result.returncode == 2
    assert "SOURCE_DATE_EPOCH must be seconds" in result.stderr


def test_there_is_one_package_kind_per_update_kind() -> None:
    for kind in UpdateKind:
        assert (REPO / "ops" / "packaging" / f"{kind.value}.control").is_file(), kind
