"""Log-folder rotation: roll over large files, keep at most N files of each type.

Every service appends to the same `<type>.log` files (workers.common.logs), so the one
rotation happens here: a file larger than MAX_BYTES is renamed `<type>.log.<UTC time>` and the
writers reopen `<type>.log` by themselves (WatchedFileHandler). Then the oldest copies beyond
the limit go, by modification time; `<type>.log` itself is never deleted.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from workers.common.logs import FILE_LEVELS, MAX_BYTES

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


def roll_over_large(logs_dir: Path, max_bytes: int = MAX_BYTES) -> list[Path]:
    """Rename every `<type>.log` larger than `max_bytes`; returns the new names."""
    rolled = []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    for kind in FILE_LEVELS:
        active = logs_dir / f"{kind}.log"
        try:
            if active.stat().st_size <= max_bytes:
                continue
            target = active.with_name(f"{active.name}.{stamp}")
            active.rename(target)
        except FileNotFoundError:
            continue
        except OSError as error:
            log.error("diag: cannot roll over %s: %s", active, error)
            continue
        rolled.append(target)
    return rolled


def rotate_logs(logs_dir: Path, keep_per_type: int, max_bytes: int = MAX_BYTES) -> list[Path]:
    """Delete the oldest files of each type beyond `keep_per_type`; returns what was deleted."""
    if keep_per_type < 1:
        raise ValueError(f"keep_per_type must be at least 1, got {keep_per_type}")
    if not logs_dir.is_dir():
        return []
    roll_over_large(logs_dir, max_bytes)
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
