"""Log-folder rotation: per type, only the oldest files beyond the limit go; and its setting."""

from __future__ import annotations

import logging
import logging.handlers
import os
import time
from pathlib import Path

import pytest

from webapp.env import EnvError
from workers.diag.config import log_files_per_type
from workers.diag.rotation import roll_over_large, rotate_logs


def make_files(folder: Path, names_oldest_first: list[str]) -> None:
    now = time.time()
    for age, name in enumerate(reversed(names_oldest_first)):
        path = folder / name
        path.write_text(name)
        os.utime(path, (now - 60 * age, now - 60 * age))


def test_only_the_oldest_files_beyond_the_limit_are_deleted_per_type(tmp_path: Path) -> None:
    info = [f"info.log.{n}" for n in range(5, 0, -1)] + ["info.log"]  # info.log.5 is the oldest
    error = ["error.log.1", "error.log"]
    debug = [f"debug.log.{n}" for n in range(4, 0, -1)] + ["debug.log"]
    others = ["redis.log", "information.log.1", "info.txt"]
    make_files(tmp_path, others + info + error + debug)

    deleted = rotate_logs(tmp_path, keep_per_type=3)

    assert sorted(path.name for path in deleted) == ["debug.log.3", "debug.log.4",
                                                     "info.log.3", "info.log.4", "info.log.5"]
    remaining = sorted(path.name for path in tmp_path.iterdir())
    assert remaining == sorted([*others, "info.log", "info.log.1", "info.log.2", "error.log", "error.log.1",
                                "debug.log", "debug.log.1", "debug.log.2"])


def test_the_file_being_written_is_never_deleted_even_when_it_is_the_oldest(tmp_path: Path) -> None:
    make_files(tmp_path, ["info.log", "info.log.2", "info.log.1"])
    deleted = rotate_logs(tmp_path, keep_per_type=1)
    assert sorted(path.name for path in deleted) == ["info.log.2"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["info.log", "info.log.1"]


def test_nothing_is_deleted_within_the_limit_or_without_a_log_folder(tmp_path: Path) -> None:
    make_files(tmp_path, ["info.log.1", "info.log"])
    assert rotate_logs(tmp_path, keep_per_type=2) == []
    assert rotate_logs(tmp_path / "absent", keep_per_type=2) == []


def test_the_limit_comes_from_the_environment_with_a_default_of_ten() -> None:
    assert log_files_per_type({}) == 10
    assert log_files_per_type({"DIAG_LOG_FILES_PER_TYPE": " 3 "}) == 3


@pytest.mark.parametrize("value", ["0", "-1", "ten", "2.5", ""])
def test_a_bad_limit_stops_start_up_naming_the_variable(value: str) -> None:
    expected = f"DIAG_LOG_FILES_PER_TYPE must be a whole number.*got {value.strip()!r}"
    with pytest.raises(EnvError, match=expected):
        log_files_per_type({"DIAG_LOG_FILES_PER_TYPE": value})


def test_rotation_refuses_a_limit_below_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        rotate_logs(tmp_path, keep_per_type=0)


def test_a_large_file_rolls_over_and_every_writer_goes_on_in_a_fresh_file(tmp_path: Path) -> None:
    """Two services write the same info.log; after diag renames it, both reopen it and no line
    is lost (what RotatingFileHandler in several processes cannot promise)."""
    writers = [logging.handlers.WatchedFileHandler(tmp_path / "info.log") for _ in range(2)]
    try:
        for index, writer in enumerate(writers):
            writer.emit(logging.makeLogRecord({"msg": f"before {index}"}))
        [rolled] = roll_over_large(tmp_path, max_bytes=5)
        for index, writer in enumerate(writers):
            writer.emit(logging.makeLogRecord({"msg": f"after {index}"}))
    finally:
        for writer in writers:
            writer.close()
    assert rolled.name.startswith("info.log.")
    assert rolled.read_text().split() == ["before", "0", "before", "1"]
    assert (tmp_path / "info.log").read_text().split() == ["after", "0", "after", "1"]
    assert roll_over_large(tmp_path, max_bytes=1000) == []
