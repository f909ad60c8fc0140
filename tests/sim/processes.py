"""Real service processes for the hardware tests: a station.toml on free ports, `python -m
workers.<name>` subprocesses, and the `sim_station` fixture (the simulator, ready to use).

Children inherit the test session's REDIS_URL, BUS_PREFIX and STATION_DATA_DIR
(tests.station_env) and get STATION_CONFIG pointing at the test's station.toml.
tests/counters and tests/rfid import the fixture from here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from bus import contract
from bus.names import Names
from tests.support.waiting import wait_until
from workers.common.redis_server import free_port, is_listening

REPO_ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class StationFiles:
    config: Path
    modbus_port: int
    rfid_link: Path


def write_station_toml(directory: Path, *, meter_poll_s: float = 1.0, extra: str = "") -> StationFiles:
    """ops/station.sim.toml with a free Modbus port, the reader link in `directory`, and the
    meters polled every `meter_poll_s`; `extra` is appended (for broken-config tests)."""
    text = (REPO_ROOT / "ops" / "station.sim.toml").read_text(encoding="utf-8")
    port, link = free_port(), directory / "ttyRFID"
    for old, new in (("port = 15020", f"port = {port}"),
                     ('"{run_dir}/ttyRFID"', f'"{link}"'),
                     ("poll_s = 1.0 }", f"poll_s = {meter_poll_s} }}")):
        assert old in text, f"ops/station.sim.toml changed: {old!r} not found"
        text = text.replace(old, new)
    path = directory / "station.toml"
    path.write_text(text + extra, encoding="utf-8")
    return StationFiles(path, port, link)


def service_env(files: StationFiles) -> dict[str, str]:
    return {**os.environ, "STATION_CONFIG": str(files.config)}


class ServiceProcess:
    """`python -m <module>` with its console output in a file (read it on failure)."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path) -> None:
        self.module = module
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", module], cwd=REPO_ROOT, env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        """SIGTERM, then wait; a child that does not stop in time is killed and fails the test."""
        if self.running():
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.module} did not stop on SIGTERM:\n{self.output()}") from None
        finally:
            self._log.close()
        return code


@dataclass
class SimStation:
    files: StationFiles
    process: ServiceProcess
    env: dict[str, str]


def wait_sim_ready(redis_client: redis.Redis, sim: ServiceProcess, files: StationFiles) -> None:
    """The Modbus port listens and the SIM command has its consumer group."""
    stream = Names.from_env().command(contract.SIM.name)

    def ready() -> bool:
        if not sim.running():
            raise AssertionError(f"sim exited with {sim.process.returncode}:\n{sim.output()}")
        return (is_listening("127.0.0.1", files.modbus_port) and bool(redis_client.exists(stream))
                and bool(redis_client.xinfo_groups(stream)))

    wait_until(ready, timeout_s=15, what="the simulator to listen and serve commands")


@pytest.fixture
def station_files(tmp_path: Path) -> StationFiles:
    return write_station_toml(tmp_path, meter_poll_s=0.2)


@pytest.fixture
def sim_station(redis_client: redis.Redis, station_files: StationFiles,
                tmp_path: Path) -> Iterator[SimStation]:
    """A running `python -m workers.sim` for one test; stopped (and checked to exit 0) after it."""
    env = service_env(station_files)
    sim = ServiceProcess("workers.sim", env, tmp_path / "sim.log")
    try:
        wait_sim_ready(redis_client, sim, station_files)
        yield SimStation(station_files, sim, env)
    finally:
        code = sim.stop()
    assert code == 0, f"sim exited with {code}:\n{sim.output()}"
