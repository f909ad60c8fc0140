"""`python -m workers.diag` as a real process on the test Redis, with a data folder of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bus import contract
from bus.contract import KeySpec
from bus.enums import CheckState
from bus.messages import DiagReport, Heartbeat, MeterReading
from bus.names import Names
from tests.support.waiting import wait_until
from webapp.env import REPO_ROOT

STOP_TIMEOUT_S = 15.0


def key(spec: KeySpec[Any], **params: Any) -> str:
    return Names.from_env().key(spec.format(**params))


def process_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "STATION_DATA_DIR": str(data_dir), **extra}


@pytest.fixture
def start_diag(tmp_path: Path, redis_client) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(**extra_env: str) -> subprocess.Popen[bytes]:
        output = tmp_path / f"diag-{len(started)}.out"
        with output.open("wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "workers.diag"],
                                       env=process_env(tmp_path / "data", **extra_env), cwd=REPO_ROOT,
                                       stdout=out, stderr=subprocess.STDOUT)
        started.append((process, output))
        return process

    try:
        yield start
    finally:
        for process, output in started:
            if process.poll() is None:
                process.kill()
                process.wait(STOP_TIMEOUT_S)
            print(output.read_text(errors="replace")[-4000:])  # shown by pytest when the test failed


def old_logs(logs_dir: Path, names: list[str]) -> None:
    logs_dir.mkdir(parents=True)
    for age, name in enumerate(names, start=1):
        path = logs_dir / name
        path.write_text(name)
        moment = time.time() - 3600 * age
        os.utime(path, (moment, moment))


def report(redis_client) -> DiagReport | None:
    raw = redis_client.get(key(contract.DIAG))
    return None if raw is None else DiagReport.model_validate_json(raw)


def state_of(diag_report: DiagReport | None, name: str) -> CheckState | None:
    checks = {check.name: check.state for check in diag_report.checks} if diag_report else {}
    return checks.get(name)


def test_diag_publishes_its_report_beats_trims_the_logs_and_stops_on_sigterm(
        start_diag, tmp_path: Path, redis_client) -> None:
    logs_dir = tmp_path / "data" / "logs"
    old_logs(logs_dir, ["info.log.1", "info.log.2", "info.log.3", "info.log.4", "error.log.1"])

    diag = start_diag(DIAG_LOG_FILES_PER_TYPE="2")

    first = wait_until(lambda: report(redis_client), timeout_s=20, what="diag report")
    states = {check.name: check.state for check in first.checks}
    assert states["meter:connector1"] is CheckState.MISSING  # nothing publishes readings here
    assert states["meter:connector2"] is CheckState.MISSING
    assert states["io_module:io_module"] is CheckState.MISSING
    assert not first.ok
    assert 0 < redis_client.pttl(key(contract.DIAG)) <= 10_000
    raw_beat = wait_until(lambda: redis_client.get(key(contract.HEARTBEAT, service="diag")),
                          what="diag heartbeat")
    beat = Heartbeat.model_validate_json(raw_beat)
    assert beat.pid == diag.pid

    wait_until(lambda: not (logs_dir / "info.log.2").exists(), what="old info logs deleted")
    remaining = {path.name for path in logs_dir.iterdir()}
    assert {name for name in remaining if name.startswith("info.")} == {"info.log", "info.log.1"}
    assert "error.log.1" in remaining  # within the limit of its own type

    reading = MeterReading(meter="connector1", energy_wh=5, power_w=0)
    redis_client.set(key(contract.METER, meter="connector1"), reading.model_dump_json())
    wait_until(lambda: state_of(report(redis_client), "meter:connector1") is CheckState.OK,
               what="connector1 judged ok")

    diag.send_signal(signal.SIGTERM)
    assert diag.wait(STOP_TIMEOUT_S) == 0


def test_a_bad_setting_stops_diag_at_start_with_a_clear_message(start_diag, tmp_path: Path) -> None:
    diag = start_diag(DIAG_LOG_FILES_PER_TYPE="many")
    assert diag.wait(STOP_TIMEOUT_S) == 2
    output = (tmp_path / "diag-0.out").read_text()
    assert "diag cannot start: DIAG_LOG_FILES_PER_TYPE must be a whole number" in output
