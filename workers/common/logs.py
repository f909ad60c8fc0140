"""Logging for every service: console plus info/debug/error file sets under STATION_DATA_DIR/logs.

A record goes to every file whose level it reaches. Every service writes the same files, so
no process rotates them itself (RotatingFileHandler in several processes loses lines at each
rotation): `diag` renames a file that grew past MAX_BYTES, each process's WatchedFileHandler
notices and reopens `<type>.log`, and diag deletes the oldest beyond the configured count.
Each line carries the service name.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s [{service}] %(name)s: %(message)s"
MAX_BYTES = 5 * 1024 * 1024  # diag rolls a log file over once it is larger, bytes
FILE_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "error": logging.ERROR}


def setup_logging(service: str, logs_dir: Path | None, *, console_level: int = logging.INFO) -> None:
    """Configure the root logger once per process. `logs_dir=None` logs to the console only."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG)
    formatter = logging.Formatter(FORMAT.format(service=service))
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    console.setFormatter(formatter)
    root.addHandler(console)
    if logs_dir is not None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        for kind, level in FILE_LEVELS.items():
            handler = logging.handlers.WatchedFileHandler(logs_dir / f"{kind}.log", encoding="utf-8")
            handler.setLevel(level)
            handler.setFormatter(formatter)
            root.addHandler(handler)
    for noisy in ("pymodbus", "websockets", "asyncio", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
