"""`python -m workers.jobs` as a real process beside a service under test, on that service's
database and data folder (the env it was started with), for tests where an OCPP request
ends in a job (diagnostics upload, firmware hand-off). Killed at teardown with its whole
process group: RQ's scheduler child inherits the worker's Redis sockets, and a survivor
would keep the worker's blocked dequeue alive and swallow the next test's first job. Its own
clean stop is tested in tests/jobs/test_service.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from webapp.env import REPO_ROOT

STOP_TIMEOUT_S = 15.0


class HasEnv(Protocol):
    env: dict[str, str]


@pytest.fixture
def start_jobs(tmp_path: Path) -> Iterator[Callable[[HasEnv], subprocess.Popen[bytes]]]:
    """`start_jobs(process)`: the jobs service with `process.env`; its output in the test log."""
    started: list[subprocess.Popen[bytes]] = []
    output = tmp_path / "jobs.log"

    def start(beside: HasEnv) -> subprocess.Popen[bytes]:
        with output.open("ab") as out:
            started.append(subprocess.Popen([sys.executable, "-m", "workers.jobs"], env=beside.env,
                                            cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True))
        return started[-1]

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):  # it may have died on its own
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT_S)
    if output.exists():
        print(f"---- jobs log ----\n{output.read_text(errors='replace')[-6000:]}")
