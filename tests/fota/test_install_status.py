"""Reading ops/start.sh's status file (workers/fota/install_status.py): the outcome the FOTA job
reports after the install restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from workers.fota.install_status import InstallResult, read_install_status

ASKED_AT = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def write(folder: Path, result: str, *, at: datetime = ASKED_AT + timedelta(seconds=30),
          message: str = "") -> Path:
    path = folder / "software.json"
    path.write_text(json.dumps({"kind": "software", "stage": "install", "result": result,
                                "time": at.isoformat(timespec="seconds"), "message": message}))
    return path


def test_ok_is_installed_and_failed_carries_dpkgs_message(tmp_path: Path) -> None:
    assert read_install_status(write(tmp_path, "ok"), since=ASKED_AT).result is InstallResult.OK
    failed = read_install_status(write(tmp_path, "failed", message="dpkg exited 1"), since=ASKED_AT)
    assert (failed.result, failed.message) == (InstallResult.FAILED, "dpkg exited 1")


def test_ok_stays_pending_while_start_sh_keeps_the_new_version_on_probation(tmp_path: Path) -> None:
    """start.sh rolls back a version that keeps crashing right after its start: Installed only
    once it has run long enough (the probation file is gone)."""
    path = write(tmp_path, "ok")
    probation = tmp_path / "software.probation"
    probation.write_text("# crashes:\n")
    assert read_install_status(path, since=ASKED_AT).result is InstallResult.PENDING
    probation.unlink()
    assert read_install_status(path, since=ASKED_AT).result is InstallResult.OK


def test_a_file_from_before_the_install_was_asked_says_nothing_and_running_is_a_failed_install(
        tmp_path: Path) -> None:
    old = write(tmp_path, "ok", at=ASKED_AT - timedelta(minutes=5))
    assert read_install_status(old, since=ASKED_AT).result is InstallResult.PENDING
    assert read_install_status(tmp_path / "missing.json", since=ASKED_AT).result is InstallResult.PENDING
    cut = read_install_status(write(tmp_path, "running"), since=ASKED_AT)
    assert cut.result is InstallResult.FAILED and "did not finish" in cut.message
    (tmp_path / "software.json").write_text("{not json")
    damaged = read_install_status(tmp_path / "software.json", since=ASKED_AT)
    assert damaged.result is InstallResult.FAILED and "cannot be read" in damaged.message
