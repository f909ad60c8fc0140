"""ops/sw_activation.sh and ops/sw_deactivation.sh, run for real into a temporary root (--root).

Owners are only asserted when the tests run as root (chown needs it); everything else always.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID

from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
ACTIVATE = REPO / "ops" / "sw_activation.sh"
DEACTIVATE = REPO / "ops" / "sw_deactivation.sh"
KIOSK = REPO / "ops" / "kiosk" / "station-kiosk.sh"
UNIT = "etc/systemd/system/station-chargepoint.service"
DATA = "var/lib/station"
KIOSK_UID = 1000
IS_ROOT = os.geteuid() == 0
HAS_SYSTEMCTL = shutil.which("systemctl") is not None


def run(script: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script), *map(str, args)], capture_output=True, text=True, timeout=60,
                          check=False)


def activate(root: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    result = run(ACTIVATE, "--root", root, "--no-venv", *args)
    assert result.returncode == 0, result.stderr
    return result


def deactivate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run(DEACTIVATE, "--root", root, *args)
    assert result.returncode == 0, result.stderr
    return result


def listing(root: Path) -> dict[str, str]:
    """Every path under root -> mode, owner, and content checksum (or link target)."""
    entries = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            content = "-> " + os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = ""
        entries[str(path.relative_to(root))] = (f"{stat.filemode(info.st_mode)} {info.st_uid}:{info.st_gid} "
                                                f"{content}")
    return entries


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def owner(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid


def passwd_entry(root: Path, name: str) -> list[str] | None:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        if line.split(":")[0] == name:
            return line.split(":")
    return None


def certificate_pair(common_name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    return (certificate.public_bytes(Encoding.PEM),
            key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))


@pytest.fixture(scope="module")
def provisioning(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """What the manufacturer hands over: update key, roots, the station's certificate and key."""
    folder = tmp_path_factory.mktemp("provisioning")
    files = {"update_key": folder / "update.key", "manufacturer_root": folder / "root.pem",
             "csms_ca": folder / "csms-ca.pem", "station_cert": folder / "station.pem",
             "station_key": folder / "station.key"}
    files["update_key"].write_text(os.urandom(32).hex() + "\n")
    files["manufacturer_root"].write_bytes(certificate_pair("Manufacturer root")[0])
    files["csms_ca"].write_bytes(certificate_pair("CSMS CA")[0])
    certificate, key = certificate_pair("STATION-0001")
    files["station_cert"].write_bytes(certificate)
    files["station_key"].write_bytes(key)
    return files


def provisioning_args(files: dict[str, Path]) -> list[str | Path]:
    return ["--update-key", files["update_key"], "--manufacturer-root", files["manufacturer_root"],
            "--csms-ca", files["csms_ca"], "--station-cert", files["station_cert"],
            "--station-key", files["station_key"]]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A station's file system before activation: its users (root and the kiosk's) only."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        f"root:x:0:0:root:/root:/bin/bash\nkiosk:x:{KIOSK_UID}:{KIOSK_UID}::/home/kiosk:/bin/bash\n")
    (tmp_path / "etc" / "group").write_text(f"root:x:0:\nkiosk:x:{KIOSK_UID}:\n")
    return tmp_path


@pytest.fixture
def activated(root: Path, provisioning: dict[str, Path]) -> Path:
    activate(root, *provisioning_args(provisioning), "--kiosk-user", "kiosk")
    return root


def test_activation_lays_out_user_folders_keys_and_modes(activated: Path,
                                                         provisioning: dict[str, Path]) -> None:
    user = passwd_entry(activated, "station")
    assert user is not None and int(user[2]) < 1000, "a system user"
    assert user[5:] == ["/var/lib/station", "/usr/sbin/nologin"]
    uid, gid = int(user[2]), int(user[3])
    data = activated / DATA
    folders = {"": 0o750, "logs": 0o750, "run": 0o750, "archives": 0o750, "db": 0o750, "keys": 0o700,
               "certs": 0o700, **{f"packages/{name}": 0o750
                                  for name in ("downloads", "staged", "installed", "failed", "status")}}
    files = {"keys/update.key": (0o600, "update_key"),
             "keys/manufacturer-root.pem": (0o644, "manufacturer_root"),
             "certs/csms-ca.pem": (0o644, "csms_ca"), "certs/station.pem": (0o644, "station_cert"),
             "certs/station.key": (0o600, "station_key")}
    for name, expected in folders.items():
        assert (data / name).is_dir() and mode(data / name) == expected, name
    for name, (expected, source) in files.items():
        assert mode(data / name) == expected, name
        assert (data / name).read_bytes() == provisioning[source].read_bytes()
    if IS_ROOT:
        assert {owner(data / name) for name in [*folders, *files]} == {(uid, gid)}

    config = activated / "etc" / "station"
    assert (config / "station.toml").read_text() == (REPO / "ops" / "station.sim.toml").read_text()
    assert mode(config / "station.env") == 0o640
    environment = (config / "station.env").read_text()
    assert "STATION_DATA_DIR=/var/lib/station\n" in environment
    assert "DATABASE_URL=sqlite:////var/lib/station/db/station.sqlite3\n" in environment
    if IS_ROOT:
        assert owner(config / "station.env") == (0, gid)


def test_activation_writes_sudoers_unit_and_kiosk(activated: Path) -> None:
    sudoers = activated / "etc" / "sudoers.d" / "station-dpkg"
    assert mode(sudoers) == 0o440
    rules = [line for line in sudoers.read_text().splitlines() if line and not line.startswith("#")]
    head = "station ALL=(root) NOPASSWD: /usr/bin/dpkg"
    assert rules == [f"{head} -s *", f"{head} -i /var/lib/station/packages/staged/*",
                     f"{head} -i /var/lib/station/packages/installed/*", f"{head} --purge station-*"]

    shipped = REPO / "ops" / "systemd" / "station-chargepoint.service"
    assert (activated / UNIT).read_text() == shipped.read_text()
    drop_in = (activated / f"{UNIT}.d" / "activation.conf").read_text()
    for line in ("User=station", "WorkingDirectory=/opt/station/app",
                 "EnvironmentFile=-/etc/station/station.env", "ExecStart=/opt/station/app/ops/start.sh"):
        assert f"\n{line}\n" in drop_in
    if HAS_SYSTEMCTL:
        wants = activated / "etc/systemd/system/multi-user.target.wants/station-chargepoint.service"
        assert os.readlink(wants) == "/etc/systemd/system/station-chargepoint.service"

    desktop = activated / "home/kiosk/.config/autostart/station-kiosk.desktop"
    exec_line = "\nExec=/opt/station/app/ops/kiosk/station-kiosk.sh http://127.0.0.1:8000/hmi/\n"
    assert exec_line in desktop.read_text()
    assert mode(desktop) == 0o644
    if IS_ROOT:
        assert owner(desktop) == owner(activated / "home/kiosk/.config") == (KIOSK_UID, KIOSK_UID)


def test_second_activation_changes_nothing(activated: Path, provisioning: dict[str, Path]) -> None:
    before = listing(activated)

    activate(activated, *provisioning_args(provisioning), "--kiosk-user", "kiosk")

    assert listing(activated) == before


def test_existing_keys_config_and_data_are_never_overwritten(root: Path,
                                                             provisioning: dict[str, Path]) -> None:
    keys, config = root / DATA / "keys", root / "etc" / "station"
    keys.mkdir(parents=True)
    config.mkdir(parents=True)
    (keys / "update.key").write_text("ab" * 32 + "\n")
    (config / "station.toml").write_text("# this station's wiring\n")
    (config / "station.env").write_text("WEB_PORT=8123\n")
    (root / DATA / "db").mkdir()
    (root / DATA / "db" / "station.sqlite3").write_bytes(b"rows")

    result = activate(root, *provisioning_args(provisioning), "--kiosk-user", "kiosk", "--web-port", "9000")

    assert (keys / "update.key").read_text() == "ab" * 32 + "\n"
    assert (config / "station.toml").read_text() == "# this station's wiring\n"
    assert (config / "station.env").read_text() == "WEB_PORT=8123\n"
    assert (root / DATA / "db" / "station.sqlite3").read_bytes() == b"rows"
    assert "kept" in result.stderr and "update.key" in result.stderr
    desktop = (root / "home/kiosk/.config/autostart/station-kiosk.desktop").read_text()
    assert "http://127.0.0.1:8123/hmi/" in desktop, "the kiosk follows the station.env that is kept"


def test_custom_user_folders_and_port(root: Path) -> None:
    activate(root, "--user", "evse", "--data-dir", "/srv/evse", "--config-dir", "/etc/evse",
             "--app-dir", "/opt/evse", "--web-port", "8080", "--kiosk-user", "kiosk")

    assert passwd_entry(root, "evse") is not None and passwd_entry(root, "station") is None
    assert mode(root / "srv/evse/keys") == 0o700
    drop_in = (root / f"{UNIT}.d" / "activation.conf").read_text()
    for line in ("User=evse", "Group=evse", "Environment=STATION_DATA_DIR=/srv/evse",
                 "Environment=STATION_CONFIG=/etc/evse/station.toml", "ExecStart=/opt/evse/ops/start.sh"):
        assert f"\n{line}\n" in drop_in
    assert "WEB_PORT=8080\n" in (root / "etc/evse/station.env").read_text()
    assert "/opt/evse/ops/kiosk/station-kiosk.sh http://127.0.0.1:8080/hmi/" in (
        root / "home/kiosk/.config/autostart/station-kiosk.desktop").read_text()
    rules = (root / "etc/sudoers.d/station-dpkg").read_text().splitlines()
    assert "evse ALL=(root) NOPASSWD: /usr/bin/dpkg -i /srv/evse/packages/staged/*" in rules
    assert "evse ALL=(root) NOPASSWD: /usr/bin/dpkg -i /srv/evse/packages/installed/*" in rules
    assert not any("/var/lib/station" in rule for rule in rules)


def test_a_root_without_user_files_gets_the_lines_written(tmp_path: Path) -> None:
    activate(tmp_path)

    assert (tmp_path / "etc/passwd").read_text() == "station:x:999:999::/var/lib/station:/usr/sbin/nologin\n"
    assert (tmp_path / "etc/group").read_text() == "station:x:999:\n"
    before = listing(tmp_path)
    activate(tmp_path)
    assert listing(tmp_path) == before


@pytest.mark.skipif(not HAS_SYSTEMCTL, reason="systemctl enables the units")
def test_a_packaged_unit_is_used_and_redis_enabled(root: Path) -> None:
    for unit in ("redis-server.service", "station-chargepoint.service"):
        packaged = root / "lib/systemd/system" / unit
        packaged.parent.mkdir(parents=True, exist_ok=True)
        packaged.write_text("[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")

    activate(root)

    assert not (root / UNIT).exists(), "the package's unit is not shadowed by a copy"
    wants = root / "etc/systemd/system/multi-user.target.wants"
    for unit in ("redis-server.service", "station-chargepoint.service"):
        assert os.readlink(wants / unit) == f"/lib/systemd/system/{unit}"
    deactivate(root)
    assert not (wants / "station-chargepoint.service").exists()
    assert (wants / "redis-server.service").is_symlink(), "Debian's redis-server stays enabled"


def test_deactivation_keeps_data_and_purge_removes_it(activated: Path) -> None:
    deactivate(activated)

    for gone in (UNIT, f"{UNIT}.d", "etc/sudoers.d/station-dpkg",
                 "home/kiosk/.config/autostart/station-kiosk.desktop",
                 "etc/systemd/system/multi-user.target.wants/station-chargepoint.service"):
        assert not (activated / gone).exists(), gone
    for kept in (f"{DATA}/keys/update.key", f"{DATA}/certs/station.key", "etc/station/station.toml",
                 "etc/station/station.env"):
        assert (activated / kept).is_file(), kept
    assert passwd_entry(activated, "station") is not None
    after_first = listing(activated)
    deactivate(activated)
    assert listing(activated) == after_first, "a second deactivation changes nothing"

    deactivate(activated, "--purge")

    assert not (activated / DATA).exists() and not (activated / "etc/station").exists()
    assert passwd_entry(activated, "station") is None
    assert "station:" not in (activated / "etc/group").read_text()
    assert passwd_entry(activated, "kiosk") is not None
    after_purge = listing(activated)
    deactivate(activated, "--purge")
    assert listing(activated) == after_purge


def test_activation_after_deactivation_finds_the_kept_keys(activated: Path,
                                                           provisioning: dict[str, Path]) -> None:
    deactivate(activated)

    activate(activated, "--kiosk-user", "kiosk")

    assert (activated / DATA / "keys/update.key").read_bytes() == provisioning["update_key"].read_bytes()
    assert (activated / UNIT).is_file()


@pytest.mark.parametrize("script, args", [
    (ACTIVATE, ["--bogus"]),
    (ACTIVATE, ["--user"]),
    (ACTIVATE, ["--user", "Bad Name"]),
    (ACTIVATE, ["--data-dir", "relative/path"]),
    (ACTIVATE, ["--data-dir", "/"]),
    (ACTIVATE, ["--config-dir", "/etc/../srv"]),
    (ACTIVATE, ["--station-cert", "/tmp/x.pem"]),
    (ACTIVATE, ["--web-port", "70000"]),
    (ACTIVATE, ["--web-port", "80a"]),
    (ACTIVATE, ["--root", "/nonexistent/root"]),
    (DEACTIVATE, ["--bogus"]),
    (DEACTIVATE, ["--root"]),
])
def test_bad_usage_exits_2(tmp_path: Path, script: Path, args: list[str]) -> None:
    result = run(script, *(args if "--root" in args else ["--root", tmp_path, *args]))

    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--update-key", "/nonexistent/update.key"],
     "--update-key /nonexistent/update.key: no such readable file"),
    (["--update-key", "{not_a_key}"], "not an update key"),
    (["--manufacturer-root", "{not_a_key}"], "not a PEM CERTIFICATE file"),
    (["--station-cert", "{cert}", "--station-key", "{cert}"], "not a PEM PRIVATE KEY file"),
    (["--station-toml", "/nonexistent/station.toml"], "no such readable file"),
    (["--kiosk-user", "nobody"], "--kiosk-user nobody: no such user"),
])
def test_missing_or_bad_input_exits_1_and_writes_nothing(root: Path, provisioning: dict[str, Path],
                                                         tmp_path_factory: pytest.TempPathFactory,
                                                         args: list[str], message: str) -> None:
    not_a_key = tmp_path_factory.mktemp("bad") / "not-a-key"
    not_a_key.write_text("hello\n")
    args = [arg.format(not_a_key=not_a_key, cert=provisioning["station_cert"]) for arg in args]
    before = listing(root)

    result = run(ACTIVATE, "--root", root, "--no-venv", *provisioning_args(provisioning)[:2], *args)

    assert result.returncode == 1
    assert message in result.stderr
    assert listing(root) == before


def test_venv_needs_the_app_installed(root: Path) -> None:
    before = listing(root)

    result = run(ACTIVATE, "--root", root, "--app-dir", "/opt/missing")

    assert result.returncode == 1
    assert "/opt/missing/requirements.txt" in result.stderr
    assert listing(root) == before


@pytest.mark.skipif(shutil.which("visudo") is None, reason="visudo (package sudo) is not installed")
def test_sudoers_rule_passes_visudo(activated: Path) -> None:
    result = subprocess.run(["visudo", "-cf", str(activated / "etc/sudoers.d/station-dpkg")],
                            capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stdout + result.stderr


def test_kiosk_launcher_waits_for_the_hmi_then_opens_it_full_screen(tmp_path: Path) -> None:
    browser_log = tmp_path / "browser-args"
    browser = tmp_path / "chromium"
    browser.write_text(f'#!/bin/sh\necho "$@" >> {browser_log}\nsleep 30\n')
    browser.chmod(0o755)
    with socket.socket() as hmi:
        hmi.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{hmi.getsockname()[1]}/hmi/"
        launcher = subprocess.Popen([str(KIOSK), url], env=os.environ | {"CHROMIUM_PATH": str(browser)},
                                    start_new_session=True, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)
            assert not browser_log.exists(), "no browser before the web service listens"
            hmi.listen()

            arguments = wait_until(lambda: browser_log.exists() and browser_log.read_text(), timeout_s=5,
                                   what="the browser to start")
        finally:
            os.killpg(launcher.pid, signal.SIGTERM)
            launcher.wait(timeout=5)

    assert arguments.split()[0] == "--kiosk" and arguments.split()[-1] == url


@pytest.mark.parametrize("args", [[], ["file:///etc/passwd"], ["http://127.0.0.1/hmi/", "extra"]])
def test_kiosk_launcher_bad_usage_exits_2(args: list[str]) -> None:
    assert run(KIOSK, *args).returncode == 2
