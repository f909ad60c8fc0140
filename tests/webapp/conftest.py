"""Fixtures of the web service tests: a fake smartw on the real bus, the HMI websocket through
the real ASGI app, the web service as a real process, and a headless Chromium page."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.test import Client

from bus import Bus, contract
from bus.messages import CommandResult, StartRequest, StopRequest
from tests.support.asgi_websocket import WebsocketCommunicator
from tests.support.waiting import async_wait_until, wait_until
from tests.webapp.roles import OPERATOR, VIEWER, client_as, user_with_role
from webapp.env import REPO_ROOT
from workers.common.redis_server import free_port, is_listening

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


@dataclass
class FakeSmartw:
    """Answers START/STOP like smartw would, and records what it was asked."""

    starts: list[StartRequest] = field(default_factory=list)
    stops: list[StopRequest] = field(default_factory=list)
    failure: Exception | None = None  # raised by the handlers when set

    async def start(self, request: StartRequest) -> CommandResult:
        self.starts.append(request)
        if self.failure is not None:
            raise self.failure
        return CommandResult(accepted=True, reason="present_card")

    async def stop(self, request: StopRequest) -> CommandResult:
        self.stops.append(request)
        if self.failure is not None:
            raise self.failure
        return CommandResult(accepted=True, reason="stopping")


@pytest.fixture
async def fake_smartw(bus: Bus) -> AsyncIterator[FakeSmartw]:
    """A fake smartw serving contract.START and contract.STOP until the test ends."""
    smartw = FakeSmartw()
    server = Bus("smartw")
    stop = asyncio.Event()
    tasks = [asyncio.create_task(server.serve(contract.START, smartw.start, stop=stop)),
             asyncio.create_task(server.serve(contract.STOP, smartw.stop, stop=stop))]
    try:
        for spec in (contract.START, contract.STOP):
            await _wait_for_group(bus, bus.names.command(spec.name))
        yield smartw
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await server.close()


async def _wait_for_group(bus: Bus, stream: str) -> None:
    async def has_group() -> bool:
        return bool(await bus.redis.exists(stream) and await bus.redis.xinfo_groups(stream))

    await async_wait_until(has_group, timeout_s=5, what=f"a consumer group on {stream}")


@pytest.fixture
async def hmi(bus: Bus) -> AsyncIterator[WebsocketCommunicator]:
    """An HMI websocket through the real ASGI app, not yet connected (the test sets keys first)."""
    from webapp.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/hmi/")
    try:
        yield communicator
    finally:
        await communicator.disconnect()


class WebProcess:
    """`python -m webapp` as a child process on a free port, inheriting the test env."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "WEB_PORT": str(self.port), "WEB_HOST": "127.0.0.1"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "webapp"], cwd=REPO_ROOT, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        process = self.process
        wait_until(lambda: is_listening("127.0.0.1", self.port) or process.poll() is not None,
                   timeout_s=START_TIMEOUT_S, what="the web service to listen")
        if process.poll() is not None:
            raise AssertionError(f"web service exited with {process.returncode}:\n{self.log()}")

    def stop(self) -> int:
        """SIGTERM, as chargepoint sends it; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"web service ignored SIGTERM:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def web_service(redis_client, tmp_path: Path) -> Iterator[WebProcess]:
    """The web service running against the test session's Redis."""
    web = WebProcess(free_port(), tmp_path / "web.log")
    web.start()
    try:
        yield web
    finally:
        web.stop()


@pytest.fixture
def viewer(db) -> Client:
    """A logged-in configurator client with the viewer role."""
    return client_as(user_with_role(VIEWER))


@pytest.fixture
def operator(db) -> Client:
    """A logged-in configurator client with the operator role (test modules may define their own)."""
    return client_as(user_with_role(OPERATOR))
