"""Shared fixtures: a private redis-server per test session, flushed around each test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis

from bus import Bus
from workers.common.redis_server import start_redis, stop_redis

# Shared fixtures live in plain modules; registering them here makes them available to every
# test package without re-importing them (and without shadowing warnings) in each conftest.
pytest_plugins = [
    "tests.sim.processes",
    "tests.support.browser",
    "tests.support.csms",
    "tests.support.database",
    "tests.support.station",
    "tests.support.jobs_service",
    "tests.support.upload_server",
    "tests.support.ftp_server",
]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The session's redis-server (REDIS_URL was chosen by tests.station_env)."""
    url = os.environ["REDIS_URL"]
    port = urlparse(url).port
    assert port is not None
    process = start_redis(port, Path(os.environ["STATION_DATA_DIR"]) / "redis")
    try:
        yield url
    finally:
        stop_redis(process, timeout_s=5)


@pytest.fixture
def redis_client(redis_server: str) -> Iterator[redis.Redis]:
    """A flushed Redis for one test (sync client, for assertions)."""
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    client.flushall()
    try:
        yield client
    finally:
        client.flushall()
        client.close()


@pytest.fixture
async def bus(redis_client: redis.Redis) -> AsyncIterator[Bus]:
    """A Bus on the flushed test Redis, closed after the test."""
    client = Bus("test")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(autouse=True)
def _forget_the_async_worker_threads_connection(request: pytest.FixtureRequest) -> Iterator[None]:
    """Async code reaches the ORM through asgiref's one sync worker thread, which then keeps a
    connection of its own to the test database; Django never closes an in-memory SQLite one.
    A later test's channels consumer (same thread) would trip over it once pytest-django blocks
    database access again, so after every database test that thread forgets its connection
    (the main thread's keeps the in-memory database alive)."""
    yield
    if request.node.get_closest_marker("django_db") is None:
        return
    from asgiref.sync import SyncToAsync
    from django.db import connections

    def forget() -> None:
        for alias in list(connections):
            with contextlib.suppress(AttributeError):  # this thread never opened it
                del connections[alias]

    SyncToAsync.single_thread_executor.submit(forget).result(timeout=10)
