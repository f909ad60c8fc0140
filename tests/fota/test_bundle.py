"""The firmware bundle's manifest: a bundle with a wrong, missing or escaping file is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from workers.fota.bundle import (
    FirmwareChecksumMismatch,
    FirmwareFileMissing,
    ManifestInvalid,
    load_manifest,
    main,
)

DC_IMAGE = b"\x7fdc-controller-image" * 100
AC_IMAGE = b"\x7fac-controller-image" * 50


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entries(index: int | None = None, **changes: Any) -> list[dict[str, Any]]:
    """The valid bundle's two entries (one by model, one by connector ids); entry `index`
    gets `changes`, a None value removes that key."""
    valid: list[dict[str, Any]] = [
        {"model": "station_dc", "file": "dc/station_dc-2.1.0.bin", "version": "2.1.0",
         "sha256": sha256(DC_IMAGE)},
        {"connector_ids": [3, 4], "file": "ac-1.4.2.bin", "version": "1.4.2", "sha256": sha256(AC_IMAGE)},
    ]
    if index is not None:
        changed = valid[index] | changes
        valid[index] = {key: value for key, value in changed.items() if value is not None}
    return valid


def write_bundle(folder: Path, manifest: dict[str, Any] | None = None) -> Path:
    """The two firmware files and a manifest (default: the valid one) in `folder`."""
    (folder / "dc").mkdir(parents=True, exist_ok=True)
    (folder / "dc" / "station_dc-2.1.0.bin").write_bytes(DC_IMAGE)
    (folder / "ac-1.4.2.bin").write_bytes(AC_IMAGE)
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest or {"version": "2.1.0", "controllers": entries()}), encoding="utf-8")
    return path


def test_a_valid_bundle_loads_and_says_which_controller_gets_which_file(tmp_path: Path) -> None:
    manifest = load_manifest(write_bundle(tmp_path))

    assert manifest.version == "2.1.0"
    assert manifest.target_for(1, "station_dc").file == "dc/station_dc-2.1.0.bin"
    ac = manifest.target_for(3, "station_dc")  # the connector entry wins over the model entry
    assert (ac.file, ac.firmware_version) == ("ac-1.4.2.bin", (1, 4, 2))
    assert manifest.target_for(5, "phoenix_ev_cc") is None


def test_files_may_live_in_another_folder_than_the_manifest(tmp_path: Path) -> None:
    write_bundle(tmp_path / "files")
    manifest_path = tmp_path / "elsewhere.json"
    manifest_path.write_text((tmp_path / "files" / "manifest.json").read_text(), encoding="utf-8")

    assert load_manifest(manifest_path, tmp_path / "files").version == "2.1.0"
    with pytest.raises(FirmwareFileMissing):
        load_manifest(manifest_path)


def test_a_changed_file_is_refused_by_its_checksum(tmp_path: Path) -> None:
    path = write_bundle(tmp_path)
    (tmp_path / "ac-1.4.2.bin").write_bytes(AC_IMAGE[:-1] + b"\x00")

    with pytest.raises(FirmwareChecksumMismatch, match=r"ac-1\.4\.2\.bin: SHA-256 is"):
        load_manifest(path)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = write_bundle(tmp_path)
    (tmp_path / "dc" / "station_dc-2.1.0.bin").unlink()

    with pytest.raises(FirmwareFileMissing, match="no such file"):
        load_manifest(path)


def test_a_symlink_out_of_the_bundle_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(AC_IMAGE)
    path = write_bundle(tmp_path / "bundle")
    (tmp_path / "bundle" / "ac-1.4.2.bin").unlink()
    (tmp_path / "bundle" / "ac-1.4.2.bin").symlink_to(outside)

    with pytest.raises(FirmwareFileMissing, match="outside the bundle folder"):
        load_manifest(path)


@pytest.mark.parametrize(("controllers", "complaint"), [
    (entries(0, sha256="ABC"), "controllers.0.sha256"),
    (entries(0, version="2.1"), "controllers.0.version"),
    (entries(0, version="2.70000.0"), "at most 65535"),
    (entries(0, file="../../etc/passwd"), "inside the bundle folder"),
    (entries(0, file="/etc/passwd"), "inside the bundle folder"),
    (entries(0, model=None), "exactly one of"),
    (entries(1, model="station_dc"), "exactly one of"),
    (entries(1, connector_ids=[]), "connector_ids"),
    (entries(1, connector_ids=[0]), "greater than or equal to 1"),
    (entries(1, connector_ids=[2, 2]), "listed twice"),
    (entries(1, connector_ids=None, model="station_dc"), "model in more than one entry: station_dc"),
    (entries(0, model=None, connector_ids=[4]), "connector id in more than one entry: 4"),
    (entries(0, colour="red"), "Extra inputs"),
    ([], "controllers"),
])
def test_a_manifest_against_the_schema_is_refused_naming_the_field(
        tmp_path: Path, controllers: list[dict[str, Any]], complaint: str) -> None:
    path = write_bundle(tmp_path, {"version": "2.1.0", "controllers": controllers})

    with pytest.raises(ManifestInvalid, match=complaint):
        load_manifest(path)


@pytest.mark.parametrize(("text", "complaint"), [
    ("{not json", "not JSON"),
    ('{"version": "2.1.0"}', "controllers: Field required"),
    ('{"version": "v2", "controllers": []}', "version"),
    ("[]", "manifest"),
])
def test_an_unreadable_manifest_is_refused(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ManifestInvalid, match=complaint):
        load_manifest(path)


def test_a_missing_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestInvalid, match="cannot read the manifest"):
        load_manifest(tmp_path / "manifest.json")


def test_the_command_lists_the_version_then_the_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_bundle(tmp_path)

    assert main([str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["2.1.0", "dc/station_dc-2.1.0.bin", "ac-1.4.2.bin"]
    (tmp_path / "ac-1.4.2.bin").unlink()
    assert main([str(path)]) == 1
    assert "ac-1.4.2.bin" in capsys.readouterr().err
    assert main([]) == 2
