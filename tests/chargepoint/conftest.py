"""Fixtures: start chargepoint (the real command, or the real Supervisor over toy children)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.support.station import (  # noqa: F401  (start_station is a fixture)
    ChargepointProcess,
    chargepoint_env,
    start_station,
    write_station_toml,
)

StartChargepoint = Callable[..., ChargepointProcess]


@pytest.fixture
def station_toml(tmp_path: Path) -> Path:
    """A valid station.toml (the simulator's, on free ports) in this test's folder."""
    return write_station_toml(tmp_path)[0]


@pytest.fixture
def start_chargepoint(tmp_path: Path, station_toml: Path,
                      redis_client: redis.Redis) -> Iterator[StartChargepoint]:
    """`start_chargepoint("manage.py", "chargepoint", "--only", "diag", STATION_CONFIG=...)`:
    runs `python ARGS` as a chargepoint process; whatever is left is killed on teardown."""
    started: list[ChargepointProcess] = []

    def start(*args: str, **env: str) -> ChargepointProcess:
        environ = chargepoint_env(station_toml, **env)
        process = ChargepointProcess([sys.executable, *args], environ,
                                     tmp_path / f"chargepoint{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.stop()
        else:
            process.kill_leftovers()


@pytest.fixture
def start_toys(start_chargepoint: StartChargepoint) -> Callable[..., ChargepointProcess]:
    """`start_toys("toy=tests.chargepoint.toy_service", grace=2)`: the real Supervisor."""
    def start(*children: str, grace: float = 30.0) -> ChargepointProcess:
        return start_chargepoint("-m", "tests.chargepoint.run_supervisor", "--grace", str(grace), *children)

    return start
