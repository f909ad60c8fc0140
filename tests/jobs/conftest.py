"""Fixtures for the job tests: a data folder per test, the real RQ queue on the test Redis,
an in-process RQ worker (SimpleWorker, burst) and a station's worth of sessions and logs."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django_rq
import pytest
from rq import Queue, SimpleWorker
from rq.timeouts import TimerDeathPenalty

from webapp.env import StationEnv
from webapp.station.models import ChargingSession
from workers.jobs.runner import QUEUE

RANGE_START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
RANGE_END = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """Test users (admin_client's too) hash their password in microseconds, not 0.2 s."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def station_env(settings, tmp_path: Path) -> StationEnv:
    """This test's own STATION_DATA_DIR (jobs and views read settings.STATION_ENV when they run)."""
    env = dataclasses.replace(settings.STATION_ENV, data_dir=tmp_path / "data")
    env.logs_dir.mkdir(parents=True)
    settings.STATION_ENV = env
    return env


@pytest.fixture
def queue(redis_client) -> Queue:
    """The jobs queue on the flushed test Redis."""
    return django_rq.get_queue(QUEUE, commit_mode="auto")


class InProcessWorker(SimpleWorker):
    """Runs jobs in the test process (so they see the test database). A thread timer enforces
    job timeouts, leaving SIGALRM to pytest-timeout."""

    death_penalty_class = TimerDeathPenalty


@pytest.fixture
def run_worker(queue: Queue) -> Iterator[Callable[[], bool]]:
    """`run_worker()` works the queue until it is empty (burst); True if it ran a job."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def run() -> bool:
        return InProcessWorker([queue], connection=queue.connection).work(burst=True, with_scheduler=True)

    try:
        yield run
    finally:
        for signum, handler in saved.items():  # the worker installs its own
            signal.signal(signum, handler)


def make_session(session_id: str, started: datetime, stopped: datetime | None) -> ChargingSession:
    return ChargingSession.objects.create(
        session_id=session_id, connector_id=1, standard="CCS", id_tag="AABBCCDD", started_at=started,
        stopped_at=stopped, meter_start_wh=1000, meter_stop_wh=2000 if stopped else None,
        energy_wh=1000 if stopped else 0, stop_reason="Local" if stopped else "")


@pytest.fixture
def sessions(db) -> dict[str, ChargingSession]:
    """Sessions around the range [10:00, 12:00]: two outside it, three overlapping it."""
    hour = timedelta(hours=1)
    return {
        "before": make_session("before", RANGE_START - 3 * hour, RANGE_START - 2 * hour),
        "across_start": make_session("across_start", RANGE_START - hour / 2, RANGE_START + hour / 2),
        "inside": make_session("inside", RANGE_START + hour / 4, RANGE_START + hour / 2),
        "running": make_session("running", RANGE_END - hour / 4, None),
        "after": make_session("after", RANGE_END + hour, RANGE_END + 2 * hour),
    }


@pytest.fixture
def log_files(station_env: StationEnv) -> dict[str, Path]:
    """An active info log (written now) and a rotated one last written before the range."""
    current = station_env.logs_dir / "info.log"
    current.write_text("2026-03-01 10:30:00 INFO [smartw] current\n")
    old = station_env.logs_dir / "info.log.1"
    old.write_text("2026-02-01 08:00:00 INFO [smartw] old\n")
    old_time = (RANGE_START - timedelta(days=20)).timestamp()
    os.utime(old, (old_time, old_time))
    return {"current": current, "old": old}
