"""Where update packages live under STATION_DATA_DIR/packages (the layout ops/start.sh shares)
and how many are kept.

    downloads/<update id>.part   the download in progress, then the verified package
    staged/<kind>/               the deb(s) ops/start.sh installs on the kind's exit code
    installed/<kind>/, failed/<kind>/   moved there by ops/start.sh after dpkg
    status/<kind>.json           ops/start.sh's last step for the kind

Old packages are deleted so a station updated for years does not fill its disk; the newest
`keep` of each folder stay, for an operator to look at or reinstall by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bus.enums import UpdateKind

log = logging.getLogger(__name__)

SIDECAR_SUFFIXES = (".validator", ".validator.new")  # beside a partial download (download.py)
SIDECAR_GLOB = ".validator*"


@dataclass(frozen=True)
class PackageStore:
    root: Path  # STATION_DATA_DIR/packages

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    def download_file(self, update_id: int) -> Path:
        return self.downloads / f"{update_id}.part"

    def staged(self, kind: UpdateKind) -> Path:
        return self.root / "staged" / kind.value

    def installed(self, kind: UpdateKind) -> Path:
        return self.root / "installed" / kind.value

    def failed(self, kind: UpdateKind) -> Path:
        return self.root / "failed" / kind.value

    def status_file(self, kind: UpdateKind) -> Path:
        return self.root / "status" / f"{kind.value}.json"

    def prune(self, keep: int, *, spare: Path | None = None) -> list[Path]:
        """Delete all but the newest `keep` files of downloads/ and each kind's installed/ and
        failed/ (never `spare`, the package in use); the deleted files."""
        folders = [self.downloads] + [folder(kind) for kind in UpdateKind
                                      for folder in (self.installed, self.failed)]
        deleted: list[Path] = []
        for folder in folders:
            deleted += _prune_folder(folder, keep, spare)
        return deleted


def _prune_folder(folder: Path, keep: int, spare: Path | None) -> list[Path]:
    """Packages only count: a partial download's validator sidecar (download.py) goes with it."""
    if not folder.is_dir():
        return []
    files = sorted((path for path in folder.iterdir()
                    if path.is_file() and path != spare and not _is_sidecar(path)),
                   key=lambda path: path.stat().st_mtime, reverse=True)
    old = files[max(keep - (spare is not None and spare.parent == folder), 0):]
    for path in old:
        path.unlink(missing_ok=True)
        for sidecar in path.parent.glob(path.name + SIDECAR_GLOB):
            sidecar.unlink(missing_ok=True)
        log.info("old update package %s deleted", path)
    return old


def _is_sidecar(path: Path) -> bool:
    return any(path.name.endswith(suffix) for suffix in SIDECAR_SUFFIXES)
