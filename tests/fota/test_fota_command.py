"""`manage.py fota pack|inspect|verify` as a manufacturer and a technician use it: real files,
real keys and certificates, exit codes 0 done, 1 refused (reason on stderr), 2 bad usage."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.support.tls import CertificateAuthority, new_key, pem, write_pair
from webapp.env import REPO_ROOT
from workers.fota.keys import new_update_key, write_update_key


@dataclass
class Files:
    key: Path
    signing_key: Path
    certificate: Path
    root: Path
    payload: Path


@pytest.fixture
def files(tmp_path: Path) -> Files:
    root = CertificateAuthority.create("Manufacturer Root")
    key = new_key()
    certificate, signing_key = write_pair(tmp_path / "pki", "signer",
                                          [root.issue(key.public_key(), "Update Signer")], key)
    (tmp_path / "pki" / "root.pem").write_text(pem(root.certificate))
    write_update_key(tmp_path / "keys" / "update.key", new_update_key())
    payload = tmp_path / "station_2.1.0_all.deb"
    payload.write_bytes(b"deb" * 10_000)
    return Files(tmp_path / "keys" / "update.key", signing_key, certificate, tmp_path / "pki" / "root.pem",
                 payload)


def manage(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", "fota", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def fota(*args: object) -> str:
    out = io.StringIO()
    call_command("fota", *map(str, args), stdout=out)
    return out.getvalue()


def pack(files: Files, output: Path, version: str = "2.1.0", kind: str = "software") -> str:
    return fota("pack", "--kind", kind, "--version", version, "--key", files.key, "--signing-key",
                files.signing_key, "--certificate", files.certificate, files.payload, output)


def test_pack_inspect_verify_extract_from_the_shell(tmp_path: Path, files: Files) -> None:
    output = tmp_path / "update.pkg"
    packed = manage("pack", "--kind", "software", "--version", "2.1.0", "--key", files.key,
                    "--signing-key", files.signing_key, "--certificate", files.certificate,
                    files.payload, output)
    assert packed.returncode == 0, packed.stderr

    inspected = manage("inspect", output)
    verified = manage("verify", output, "--key", files.key, "--root", files.root, "--kind", "software",
                      "--installed-version", "2.0.9", "--extract", tmp_path / "out")

    assert inspected.returncode == 0 and "version: 2.1.0" in inspected.stdout
    assert "not verified" in inspected.stdout
    assert verified.returncode == 0, verified.stderr
    assert (tmp_path / "out" / files.payload.name).read_bytes() == files.payload.read_bytes()


def test_a_refused_package_exits_1_with_the_reason_on_stderr(tmp_path: Path, files: Files) -> None:
    output = tmp_path / "update.pkg"
    pack(files, output)
    output.write_bytes(output.read_bytes()[:-5])

    result = manage("verify", output, "--key", files.key, "--root", files.root, "--extract", tmp_path / "out")

    assert result.returncode == 1
    assert "truncated" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [
    ("pack", "--kind", "firmware", "--version", "1", "--key", "k", "--signing-key", "s", "--certificate", "c",
     "in", "out"),
    ("verify", "x.pkg", "--key", "k", "--root", "r", "--installed-version", "1.x"),
    ("explode",)])
def test_bad_usage_exits_2(args: tuple[str, ...]) -> None:
    result = manage(*args)
    assert result.returncode == 2, result.stderr


def test_an_old_version_is_refused_as_a_replay(tmp_path: Path, files: Files) -> None:
    output = tmp_path / "update.pkg"
    pack(files, output, version="1.9.3")

    with pytest.raises(CommandError, match="not-newer") as error:
        fota("verify", output, "--key", files.key, "--root", files.root, "--installed-version", "1.10.0")

    assert error.value.returncode == 1


def test_a_package_of_another_kind_is_refused(tmp_path: Path, files: Files) -> None:
    output = tmp_path / "update.pkg"
    pack(files, output, kind="web-configurator")

    with pytest.raises(CommandError, match="wrong-kind") as error:
        fota("verify", output, "--key", files.key, "--root", files.root, "--kind", "software")

    assert error.value.returncode == 1


def test_a_package_signed_under_another_root_is_refused(tmp_path: Path, files: Files) -> None:
    output = tmp_path / "update.pkg"
    pack(files, output)
    other_root = tmp_path / "other-root.pem"
    other_root.write_text(CertificateAuthority.create("Someone Else").pem)

    with pytest.raises(CommandError, match="certificate-untrusted") as error:
        fota("verify", output, "--key", files.key, "--root", other_root)

    assert error.value.returncode == 1


def test_a_readable_key_file_is_a_usage_error(tmp_path: Path, files: Files) -> None:
    files.key.chmod(0o644)

    with pytest.raises(CommandError, match="chmod 600") as error:
        pack(files, tmp_path / "update.pkg")

    assert error.value.returncode == 2
    assert not (tmp_path / "update.pkg").exists()


def test_a_missing_package_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError) as error:
        fota("inspect", tmp_path / "absent.pkg")
    assert error.value.returncode == 2


def test_a_file_that_is_not_a_package_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello, this is not an update package")
    with pytest.raises(CommandError, match="bad-format") as error:
        fota("inspect", tmp_path / "notes.txt")
    assert error.value.returncode == 1
