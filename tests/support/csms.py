"""A running CSMS (workers.sim.csms, built on the `ocpp` library) on a free port, in the test's
event loop. Registered for every test in tests/conftest.py (pytest_plugins)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from workers.sim.csms import Csms, CsmsBehaviour


@asynccontextmanager
async def running_csms() -> AsyncIterator[Csms]:
    """A CSMS with a long heartbeat interval, so heartbeats do not crowd what a test looks at."""
    server = Csms(port=0, behaviour=CsmsBehaviour(heartbeat_interval_s=60))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def csms() -> AsyncIterator[Csms]:
    async with running_csms() as server:
        yield server


@pytest.fixture
async def second_csms() -> AsyncIterator[Csms]:
    """Another central system, for a station moved from `csms` to it."""
    async with running_csms() as server:
        yield server
