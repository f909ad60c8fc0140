"""End-to-end fixtures: the whole station (`chargepoint --sim`) against a real CSMS."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.database import sqlite_url
from tests.support.station import Station
from workers.sim.csms import Csms

CHARGE_POINT_ID = "E2E-0001"
METER_VALUE_SAMPLE_INTERVAL_S = "1"


@pytest.fixture
async def station(csms: Csms, start_station: Callable[..., Station],
                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Station:
    """The whole station, booted at the CSMS, with a database of its own (chargepoint
    migrates it). Started in a thread: the CSMS runs on this test's event loop and must keep
    answering while the station starts."""
    monkeypatch.setenv("OCPP_METER_VALUE_SAMPLE_INTERVAL", METER_VALUE_SAMPLE_INTERVAL_S)
    monkeypatch.setenv("DATABASE_URL", sqlite_url(tmp_path / "station.sqlite3"))
    started = await asyncio.to_thread(start_station, csms.url, charge_point_id=CHARGE_POINT_ID)
    await csms.wait_for_call("BootNotification", timeout_s=30)
    return started
