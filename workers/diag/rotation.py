"""Log-folder rotation: keep at most N files of each type (info, debug, error).

The logging handlers rotate each file set by size (workers.common.logs); this is the
station-wide cap on what stays on disk. A type's files are `<type>.log` (being written,
never deleted) and its rotated copies `<type>.log.<suffix>`; the oldest by modification
time go first.
"""

from __future__ import annotations

import logging
from pathlib import Path

from workers.common.logs import FILE_LEVELS

log = logging.getLogger(__name__)


def files_of_type(logs_dir: Path, kind: str) -> list[Path]:
    """The type's files, newest first."""
    active = f"{kind}.log"
    found = [path for path in logs_dir.iterdir()
             if path.is_file() and (path.name == active or path.name.startswith(active + "."))]
    return sorted(found, key=_mtime, reverse=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # rotated away while listing: sorts as oldest, unlink skips it
        return 0.0


def rotate_logs(logs_dir: Path, keep_per_type: int) -> list[Path]:
    """Delete the oldest files of each type beyond `keep_per_type`; returns what was deleted."""
    if keep_per_type < 1:
        raise ValueError(f"keep_per_type must be at least 1, got {keep_per_type}")
    if not logs_dir.is_dir():
        return []
    deleted = []
    for kind in FILE_LEVELS:
        for path in files_of_type(logs_dir, kind)[keep_per_type:]:
            if path.name == f"{kind}.log":
                continue  # the file being written counts, but is never deleted
            try:
                path.unlink()
            except FileNotFoundError:
                continue  # the handler rotated it meanwhile
            except OSError as error:
                log.error("diag: cannot delete old log file %s: %s", path, error)
                continue
            deleted.append(path)
    if deleted:
        log.info("diag: deleted %d old log file(s): %s", len(deleted), ", ".join(p.name for p in deleted))
    return deleted
