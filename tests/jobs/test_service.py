"""`python -m workers.jobs` and `python -m workers.jobs.cli` as real processes, on a migrated
database file of their own (pytest-django's test database lives in this process only) and
the test Redis. Rows are read back with sqlite3, as any other process would."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bus import contract
from bus.messages import Heartbeat
from bus.names import Names
from tests.jobs.conftest import RANGE_END, RANGE_START
from tests.support.waiting import wait_until
from webapp.env import REPO_ROOT
from webapp.station.models import JobRecord

STOP_TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def station_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with a migrated SQLite database, shared by this module's processes."""
    data_dir = tmp_path_factory.mktemp("jobs-station")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], env=process_env(data_dir),
                   cwd=REPO_ROOT, check=True, capture_output=True, timeout=120)
    return data_dir


def process_env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "STATION_DATA_DIR": str(data_dir),
            "DATABASE_URL": f"sqlite:///{data_dir / 'station.sqlite3'}"}


def cli(data_dir: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """Run the jobs CLI; returns its exit code and the JobRecord it printed."""
    done = subprocess.run([sys.executable, "-m", "workers.jobs.cli", "archive", *args],
                          env=process_env(data_dir), cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout.splitlines()[-1])


def job_row(data_dir: Path, record_id: int) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(data_dir / "station.sqlite3")) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute(f"SELECT * FROM {JobRecord._meta.db_table} WHERE id = ?",
                                 (record_id,)).fetchone()
    return dict(row)


def range_args() -> list[str]:
    return ["--start", RANGE_START.isoformat(), "--end", RANGE_END.isoformat()]


@pytest.fixture
def jobs_service(station_dir: Path, redis_client, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m workers.jobs`; killed at teardown if the test did not stop it."""
    output = tmp_path / "jobs.out"
    with output.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "workers.jobs"], env=process_env(station_dir),
                                   cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(STOP_TIMEOUT_S)
        print(output.read_text(errors="replace")[-4000:])  # shown by pytest when the test failed


def heartbeat(redis_client, service: str) -> Heartbeat | None:
    raw = redis_client.get(Names.from_env().key(contract.HEARTBEAT.format(service=service)))
    return None if raw is None else Heartbeat.model_validate_json(raw)


def finished(data_dir: Path, record_id: int) -> dict[str, Any] | None:
    row = job_row(data_dir, record_id)
    return row if row["status"] not in ("queued", "running") else None


def test_the_service_beats_runs_queued_and_scheduled_jobs_and_stops_on_sigterm(
        jobs_service, station_dir, redis_client) -> None:
    beat = wait_until(lambda: heartbeat(redis_client, "jobs"), timeout_s=20, what="jobs heartbeat")
    assert beat.pid == jobs_service.pid
    key = Names.from_env().key(contract.HEARTBEAT.format(service="jobs"))
    assert 0 < redis_client.pttl(key) <= 2000

    code, queued = cli(station_dir, *range_args(), "--enqueue")
    assert (code, queued["status"]) == (0, "queued")
    row = wait_until(lambda: finished(station_dir, queued["id"]), timeout_s=30, what="the queued job")
    assert row["status"] == "finished", row["log"]
    assert (station_dir / row["result_file"]).is_file()

    run_at = datetime.now(UTC) + timedelta(seconds=2)
    code, scheduled = cli(station_dir, *range_args(), "--enqueue", "--at", run_at.isoformat())
    assert code == 0
    row = wait_until(lambda: finished(station_dir, scheduled["id"]), timeout_s=30, what="the scheduled job")
    assert row["status"] == "finished", row["log"]
    assert datetime.fromisoformat(row["started_at"]).replace(tzinfo=UTC) >= run_at - timedelta(seconds=1)

    jobs_service.send_signal(signal.SIGTERM)
    assert jobs_service.wait(STOP_TIMEOUT_S) == 0


def test_the_cli_builds_an_archive_here_and_reports_a_bad_range(station_dir) -> None:
    code, record = cli(station_dir, *range_args())
    assert (code, record["status"]) == (0, "finished")
    assert (station_dir / record["result_file"]).is_file()

    code, record = cli(station_dir, "--start", RANGE_END.isoformat(), "--end", RANGE_START.isoformat())
    assert (code, record["status"]) == (1, "failed")
    assert "must be before end" in record["log"]


def test_the_cli_refuses_a_date_that_is_not_iso_8601(station_dir) -> None:
    done = subprocess.run([sys.executable, "-m", "workers.jobs.cli", "archive", "--start", "yesterday",
                           "--end", RANGE_END.isoformat()], env=process_env(station_dir), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "not an ISO 8601 date-time: 'yesterday'" in done.stderr
