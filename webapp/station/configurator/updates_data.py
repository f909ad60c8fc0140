"""What the Updates page shows, read in one place: the over-the-air updates (FirmwareUpdate rows,
written by the jobs service), the version installed of each kind, what ops/start.sh said about
its last install of each kind (packages/status/<kind>.json), the controller-firmware bundles
installed under STATION_FIRMWARE_DIR and the firmware each charge controller reports (its
DeviceState on the bus).

A location is shown without its password (workers/jobs/upload.py `describe`); a status file
that cannot be read is shown as such, never skipped, so a broken install is not hidden.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings

from bus import Bus, contract
from bus.enums import UpdateKind
from webapp.station.actions import InvalidInput
from webapp.station.bus_state import read_key, station_config
from webapp.station.models import FirmwareUpdate
from workers.fota.bundle import MANIFEST_NAME
from workers.fota.trust import installed_version
from workers.fota.versions import PackageVersion
from workers.jobs.upload import UploadError, parse_location

MAX_UPDATES = 20  # newest rows shown; the admin's FirmwareUpdate list has them all
UNUSABLE_LOCATION = "(not a usable location)"


@dataclass(frozen=True)
class InstallFile:
    """One packages/status/<kind>.json: ops/start.sh's last install step of the kind."""

    name: str
    kind: str
    stage: str
    result: str  # running | ok | failed, or "unreadable"
    time: str
    message: str
    packages: str


@dataclass(frozen=True)
class ControllerFirmware:
    connector_id: int
    model: str
    version: str | None  # None: not known (no state on the bus, or the controller does not answer)
    available: bool | None  # None: no state on the bus
    at: datetime | None


def shown_location(location: str) -> str:
    try:
        return parse_location(location).describe()
    except UploadError:
        return UNUSABLE_LOCATION


def updates() -> list[FirmwareUpdate]:
    """The newest FirmwareUpdate rows, each with `shown_location` set."""
    rows = list(FirmwareUpdate.objects.select_related("job", "flash_job")[:MAX_UPDATES])
    for row in rows:
        row.shown_location = shown_location(row.location)  # type: ignore[attr-defined]
    return rows


def installed_versions() -> list[tuple[str, str]]:
    """(kind, the version of its last Installed update, or "-")."""
    versions = []
    for kind in UpdateKind:
        try:
            version = installed_version(kind)
        except ValueError as error:  # a row the jobs wrote that is not a version: say so
            versions.append((kind.value, f"unreadable: {error}"))
            continue
        versions.append((kind.value, "-" if version is None else str(version)))
    return versions


def install_files() -> list[InstallFile]:
    folder = settings.STATION_ENV.packages_dir / "status"
    if not folder.is_dir():
        return []
    return [_install_file(path) for path in sorted(folder.glob("*.json"))]


def _install_file(path: Path) -> InstallFile:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        packages = record.get("packages") or []
        listed = ", ".join(map(str, packages)) if isinstance(packages, list) else str(packages)
        return InstallFile(name=path.name, kind=str(record.get("kind", path.stem)),
                           stage=str(record.get("stage", "")), result=str(record.get("result", "")),
                           time=str(record.get("time", "")), message=str(record.get("message", "")),
                           packages=listed)
    except (OSError, ValueError) as error:
        return InstallFile(name=path.name, kind=path.stem, stage="", result="unreadable", time="",
                           message=f"cannot be read: {error}", packages="")


def installed_bundles() -> list[str]:
    """The controller-firmware bundle versions installed: folders of STATION_FIRMWARE_DIR with a
    manifest, newest version first (compared as numbers: 10.0.0 before 9.0.0), then the folders
    whose name is not a version, by name, so none is hidden."""
    root = settings.STATION_ENV.firmware_dir
    if not root.is_dir():
        return []
    names = [folder.name for folder in root.iterdir() if (folder / MANIFEST_NAME).is_file()]
    versions, others = [], []
    for name in names:
        try:
            versions.append((PackageVersion.parse(name), name))
        except ValueError:
            others.append(name)
    return [name for _, name in sorted(versions, reverse=True)] + sorted(others)


def bundle_folder(version: str) -> Path:
    """The folder of an installed bundle; InvalidInput for any other name (never a path)."""
    if version not in installed_bundles():
        raise InvalidInput(f"no installed firmware bundle {version!r} in {settings.STATION_ENV.firmware_dir}")
    return settings.STATION_ENV.firmware_dir / version


async def controller_firmware(bus: Bus) -> list[ControllerFirmware]:
    rows = []
    for connector in station_config().connectors:
        state = await read_key(bus, contract.DEVICE, device=f"controller:{connector.id}")
        rows.append(ControllerFirmware(
            connector_id=connector.id, model=connector.controller.model,
            version=state.firmware_version if state else None,
            available=state.available if state else None, at=state.at if state else None))
    return rows
