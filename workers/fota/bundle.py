"""The controller-firmware bundle's manifest: which controllers get which firmware file.

A controller-firmware deb (ops/build-deb.sh controller-firmware) installs one folder,
/opt/station/firmware/<bundle version>/, holding the firmware files and `manifest.json`.
update_fw flashes from it, so nothing is flashed before the manifest has been read here:
every entry names its controllers (by connector id, or by controller model as in
station.toml), a file inside the folder, the firmware version the controller reports
afterwards (identity registers 101..103, docs/controller-protocol.md) and the file's SHA-256.
A file that is missing, outside the folder or has another checksum fails loading with a
typed error, so a damaged bundle is refused as a whole and no controller gets half of it.

`python -m workers.fota.bundle MANIFEST [FOLDER]` checks a manifest and prints the bundle
version, then each file (ops/build-deb.sh copies exactly these into the package).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path, PurePosixPath
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MANIFEST_NAME = "manifest.json"
"""The manifest's file name inside an installed bundle folder."""
FIRMWARE_VERSION_PART_MAX = 65535  # each part is one 16-bit identity register
HASH_CHUNK_BYTES = 1 << 20


class BundleError(Exception):
    """The firmware bundle cannot be used; the message names the manifest or the file."""


class ManifestInvalid(BundleError):
    """The manifest cannot be read, is not JSON or does not follow the schema."""


class FirmwareFileMissing(BundleError):
    """A file the manifest lists is not in the bundle folder."""


class FirmwareChecksumMismatch(BundleError):
    """A firmware file's SHA-256 differs from the manifest's: damaged or replaced."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


ConnectorId = Annotated[int, Field(ge=1)]


class FirmwareTarget(_Model):
    """One firmware file and the controllers that get it."""

    model: str | None = Field(default=None, min_length=1, description=(
        "controller model as in station.toml [connectors.controller] model, e.g. station_dc"))
    connector_ids: tuple[ConnectorId, ...] | None = Field(default=None, min_length=1, description=(
        "the connectors whose controllers get this file; wins over a `model` entry"))
    file: str = Field(description="path inside the bundle folder, '/'-separated, no '..'")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$", description=(
        "major.minor.patch the controller reports after flashing (identity registers 101..103)"))
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="the file's SHA-256, lowercase hex")

    @field_validator("file")
    @classmethod
    def _file_stays_inside_the_bundle(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
            raise ValueError(f"must be a relative path inside the bundle folder, got {value!r}")
        return value

    @field_validator("version")
    @classmethod
    def _version_fits_the_registers(cls, value: str) -> str:
        if any(int(part) > FIRMWARE_VERSION_PART_MAX for part in value.split(".")):
            raise ValueError(f"each part must be at most {FIRMWARE_VERSION_PART_MAX}, got {value!r}")
        return value

    @field_validator("connector_ids")
    @classmethod
    def _connectors_once(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"a connector id is listed twice: {list(value)}")
        return value

    @model_validator(mode="after")
    def _names_its_controllers_one_way(self) -> FirmwareTarget:
        if (self.model is None) == (self.connector_ids is None):
            raise ValueError("give exactly one of `model` or `connector_ids`")
        return self

    @property
    def firmware_version(self) -> tuple[int, int, int]:
        """The version as the identity registers 101..103 hold it."""
        major, minor, patch = (int(part) for part in self.version.split("."))
        return major, minor, patch


class FirmwareManifest(_Model):
    """manifest.json: the bundle's version and its firmware files."""

    version: str = Field(min_length=1, pattern=r"^[0-9][A-Za-z0-9.+~-]*$", description=(
        "the bundle's version, the same as its deb package's"))
    controllers: tuple[FirmwareTarget, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _each_controller_once(self) -> FirmwareManifest:
        connectors = [cid for entry in self.controllers for cid in entry.connector_ids or ()]
        models = [entry.model for entry in self.controllers if entry.model is not None]
        for kind, names in (("connector id", connectors), ("model", models)):
            twice = sorted({str(name) for name in names if names.count(name) > 1})
            if twice:
                raise ValueError(f"{kind} in more than one entry: {', '.join(twice)}")
        return self

    def target_for(self, connector_id: int, model: str) -> FirmwareTarget | None:
        """The file for the controller of `connector_id` (of `model`), if the bundle has one:
        an entry naming the connector wins over one naming the model."""
        for entry in self.controllers:
            if entry.connector_ids is not None and connector_id in entry.connector_ids:
                return entry
        return next((entry for entry in self.controllers if entry.model == model), None)


def load_manifest(path: Path, folder: Path | None = None) -> FirmwareManifest:
    """Read and validate the manifest at `path`, then check every file it lists exists in
    `folder` (default: the manifest's own folder) with its SHA-256. Raises a BundleError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestInvalid(f"{path}: cannot read the manifest: {error}") from error
    except json.JSONDecodeError as error:
        raise ManifestInvalid(f"{path}: not JSON: {error}") from error
    try:
        manifest = FirmwareManifest.model_validate(data)
    except ValidationError as error:
        raise ManifestInvalid(f"{path}: {_describe(error)}") from error
    for entry in manifest.controllers:
        check_file(path.parent if folder is None else folder, entry)
    return manifest


def check_file(folder: Path, entry: FirmwareTarget) -> Path:
    """The entry's file inside `folder`, after checking it is there with the listed SHA-256."""
    root = folder.resolve()
    file = (root / entry.file).resolve()
    if not file.is_relative_to(root):
        raise FirmwareFileMissing(f"{entry.file}: points outside the bundle folder {root}")
    if not file.is_file():
        raise FirmwareFileMissing(f"{entry.file}: no such file in the bundle folder {root}")
    actual = file_sha256(file)
    if actual != entry.sha256:
        raise FirmwareChecksumMismatch(
            f"{entry.file}: SHA-256 is {actual}, the manifest says {entry.sha256}")
    return file


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _describe(error: ValidationError) -> str:
    """Pydantic's errors as one line each: `controllers.0.sha256: String should match ...`."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'manifest'}: {item['msg']}"
        for item in error.errors())


def main(argv: list[str]) -> int:
    """Exit 0 and print the bundle version, then each file, one a line, when the manifest is
    usable; 1 (with the reason) when it is not; 2 on bad usage."""
    if len(argv) not in (1, 2):
        sys.stderr.write("usage: python -m workers.fota.bundle MANIFEST [FOLDER]\n")
        return 2
    try:
        manifest = load_manifest(Path(argv[0]), Path(argv[1]) if len(argv) == 2 else None)
    except BundleError as error:
        sys.stderr.write(f"{error}\n")
        return 1
    lines = [manifest.version, *(entry.file for entry in manifest.controllers)]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
