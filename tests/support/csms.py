"""A running CSMS (workers.sim.csms, built on the `ocpp` library) on a free port, in the test's
event loop. Registered for every test in tests/conftest.py (pytest_plugins)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from workers.sim.csms import Csms, CsmsBehaviour


@pytest.fixture
async def csms() -> AsyncIterator[Csms]:
    """Heartbeat interval long, so heartbeats do not crowd what a test looks at."""
    server = Csms(port=0, behaviour=CsmsBehaviour(heartbeat_interval_s=60))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
