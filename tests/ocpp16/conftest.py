"""Fixtures for the ocpp16 tests: a real CSMS (workers.sim.csms) on a free port in the test's
event loop, and `python -m workers.ocpp16` as a real subprocess on the test Redis with a
database of its own (a copy of one migrated once per session), so stopping, killing and
restarting it is the real thing."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.database import sqlite_url
from webapp.env import REPO_ROOT
from workers.sim.csms import Csms, CsmsBehaviour

CHARGE_POINT_ID = "TEST CP/1"  # a space and a slash: the URL must percent-encode it
STOP_TIMEOUT_S = 15.0
STATION_TOML = """
[station]
name = "ocpp16 test station"
max_power_kw = 100.0

[buses.tcp]
kind = "modbus_tcp"
host = "127.0.0.1"
port = 1502

[io_module]
bus = "tcp"
device_id = 10
estop_input = 0

[rfid]
port = "{run_dir}/ttyRFID"

[[connectors]]
id = 1
standard = "CCS"
max_power_kw = 50.0
contactor_coil = 0
meter = { bus = "tcp", device_id = 1, model = "acudc243" }
controller = { bus = "tcp", device_id = 21 }

[[connectors]]
id = 2
standard = "Type2"
max_power_kw = 22.0
contactor_coil = 1
meter = { bus = "tcp", device_id = 2, model = "sdm630" }
controller = { bus = "tcp", device_id = 22 }
"""


class Ocpp16Process:
    """`python -m workers.ocpp16` with its own data folder and database; output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Ocpp16Process:
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen([sys.executable, "-m", "workers.ocpp16"], cwd=REPO_ROOT,
                                            env=self.env, stdin=subprocess.DEVNULL, stdout=log_file,
                                            stderr=subprocess.STDOUT)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL if it hangs); returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    async def stopped(self) -> int | None:
        """`stop()` without blocking the event loop (the CSMS in it must keep running)."""
        return await asyncio.to_thread(self.stop)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
async def start_ocpp16(redis_client, service_db: Path,
                       tmp_path: Path) -> AsyncIterator[Callable[..., Ocpp16Process]]:
    """Start ocpp16 against a CSMS: `start_ocpp16(csms.url, OCPP_X="1")`; stopped at teardown
    (from a thread, so an in-process CSMS keeps answering the closing handshake), which fails
    the test if it did not exit cleanly."""
    started: list[Ocpp16Process] = []
    config = tmp_path / "station.toml"
    config.write_text(STATION_TOML)

    def start(csms_url: str, **overrides: str) -> Ocpp16Process:
        env = {**os.environ, "DATABASE_URL": sqlite_url(service_db),
               "STATION_DATA_DIR": str(tmp_path / "data"), "STATION_CONFIG": str(config),
               "OCPP_CSMS_URL": csms_url, "OCPP_CHARGE_POINT_ID": CHARGE_POINT_ID,
               "OCPP_METER_VALUE_SAMPLE_INTERVAL": "1", "OCPP_RECONNECT_MAX": "0.5",
               "OCPP_TRANSACTION_MESSAGE_RETRY_INTERVAL": "0.2", "OCPP_MESSAGE_TIMEOUT": "5",
               **overrides}
        process = Ocpp16Process(env, tmp_path / "ocpp16.log").start()
        started.append(process)
        return process

    yield start
    codes = [await process.stopped() for process in started]
    if started:
        print(f"---- ocpp16 log ----\n{started[-1].log()[-20_000:]}")
    assert all(code == 0 for code in codes), f"ocpp16 did not stop cleanly: exit codes {codes}"


@pytest.fixture
async def tls_csms() -> AsyncIterator[Callable[..., Csms]]:
    """`await tls_csms(context)`: a CSMS serving wss:// with that TLS context."""
    started: list[Csms] = []

    async def start(context: ssl.SSLContext) -> Csms:
        server = Csms(port=0, behaviour=CsmsBehaviour(heartbeat_interval_s=60), ssl_context=context)
        await server.start()
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        await server.stop()
