"""Availability and free mode in the running simulated station, set with `manage.py station`:
an Inoperative connector is Unavailable at the CSMS and refuses starts, a change during a session
waits for its end, the setting survives a smartw restart; free mode starts on plug.

Connector 2 (Type 2, AC) throughout. The station keeps these settings in its database, which is
its own in every test (tests/e2e/conftest.py): what a test sets never reaches another's station.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bus import contract
from bus.enums import ConnectorStatus
from bus.messages import ConnectorState, utcnow
from tests.e2e.conftest import CHARGE_POINT_ID
from tests.e2e.helpers import sim, status_notification
from tests.support.database import query
from tests.support.station import Station
from tests.support.waiting import async_wait_until
from webapp.station.models import RuntimeSettings
from workers.sim.csms import Csms, ReceivedCall
from workers.smartw.availability import DEFAULT_FREE_MODE_ID_TAG

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CONNECTOR = 2


async def manage_station(station: Station, *args: str) -> str:
    """`manage.py station ARGS` (exit 0 checked) without blocking the CSMS on this loop."""
    done = await asyncio.to_thread(station.manage, "station", *args)
    return done.stdout.strip()


async def connector_state(station: Station, status: ConnectorStatus, *, after: datetime | None = None,
                          timeout_s: float = 20.0) -> ConnectorState:
    """Connector 2's state on the bus once it shows `status` (published after `after`, if given)."""
    async def reached() -> ConnectorState | None:
        state = station.bus.get(contract.CONNECTOR, connector_id=CONNECTOR)
        fresh = state is not None and (after is None or state.at > after)
        return state if fresh and state.status is status else None
    return await async_wait_until(reached, timeout_s=timeout_s, what=f"connector {CONNECTOR} {status}")


def runtime_settings(station: Station) -> dict[str, Any]:
    """The settings row smartw wrote in the station's database."""
    path = Path(station.database_url.removeprefix("sqlite:///"))
    rows = query(path, f"SELECT * FROM {RuntimeSettings._meta.db_table}")
    assert len(rows) == 1, rows
    return dict(rows[0])


def statuses_since(csms: Csms, index: int) -> list[str]:
    return [c.payload["status"] for c in csms.calls("StatusNotification")[index:]
            if c.payload["connectorId"] == CONNECTOR]


async def start_remotely(csms: Csms, tag: str) -> str:
    return await csms.remote_start(CHARGE_POINT_ID, tag, connector_id=CONNECTOR)


async def test_inoperative_refuses_starts_waits_for_the_session_and_survives_a_smartw_restart(
        csms: Csms, station: Station) -> None:
    assert await manage_station(station, "availability", "--connector", "2", "inoperative") == \
        "connector 2 inoperative: Accepted"
    state = await connector_state(station, ConnectorStatus.UNAVAILABLE)
    assert (state.info, state.operative) == ("unavailable", False)
    await status_notification(csms, CONNECTOR, "Unavailable")

    await sim(station, "plug", str(CONNECTOR), "--soc", "30")
    assert await start_remotely(csms, "TAG-E2E") == "Rejected"
    assert station.bus.get(contract.CONNECTOR, connector_id=CONNECTOR).status is ConnectorStatus.UNAVAILABLE

    assert await manage_station(station, "availability", "--connector", "2", "operative") == \
        "connector 2 operative: Accepted"
    await status_notification(csms, CONNECTOR, "Preparing")
    assert await start_remotely(csms, "TAG-E2E") == "Accepted"
    await csms.wait_for_call("StartTransaction", timeout_s=20)
    await status_notification(csms, CONNECTOR, "Charging")

    asked_at = utcnow()
    assert await manage_station(station, "availability", "--connector", "2", "inoperative") == \
        "connector 2 inoperative: Scheduled"
    charging = await connector_state(station, ConnectorStatus.CHARGING, after=asked_at)
    assert charging.operative is False and charging.session_id is not None
    before_stop = len(csms.calls("StatusNotification"))
    await sim(station, "unplug", str(CONNECTOR))
    stop: ReceivedCall = await csms.wait_for_call("StopTransaction", timeout_s=20)
    assert stop.payload["reason"] == "EVDisconnected"
    await connector_state(station, ConnectorStatus.UNAVAILABLE)
    await async_wait_until(lambda: _last_is(csms, before_stop, "Unavailable"),
                           what="StatusNotification Unavailable after the session")
    assert "Available" not in statuses_since(csms, before_stop), "no Available flash before Unavailable"

    assert json.loads(runtime_settings(station)["inoperative_connectors"]) == [CONNECTOR]
    before_restart = len(csms.calls("StatusNotification"))
    restarted_at = await restart_smartw(station)
    state = await connector_state(station, ConnectorStatus.UNAVAILABLE, after=restarted_at)
    assert state.operative is False

    assert await manage_station(station, "availability", "--connector", "2", "operative") == \
        "connector 2 operative: Accepted"
    await connector_state(station, ConnectorStatus.AVAILABLE)
    await async_wait_until(lambda: _last_is(csms, before_restart, "Available"),
                           what="StatusNotification Available once operative again")
    assert statuses_since(csms, before_restart).count("Available") == 1, "no Available flash on restart"
    assert json.loads(runtime_settings(station)["inoperative_connectors"]) == []


async def _last_is(csms: Csms, index: int, status: str) -> bool:
    seen = statuses_since(csms, index)
    return bool(seen) and seen[-1] == status


async def restart_smartw(station: Station) -> datetime:
    """SIGTERM smartw; chargepoint starts it again (after its backoff). Returns when the new
    process started: a state published after that is the new smartw's."""
    old = station.running_pid("smartw")
    assert old is not None
    os.kill(old, signal.SIGTERM)

    async def replaced() -> datetime | None:
        child = station.children().get("smartw")
        fresh = child is not None and child.pid not in (None, old) and station.running_pid("smartw")
        return child.started_at if fresh else None
    return await async_wait_until(replaced, timeout_s=30, what="smartw restarted")


async def test_free_mode_starts_a_session_on_plug_with_the_configured_id_tag(
        csms: Csms, station: Station) -> None:
    assert await manage_station(station, "free-mode", "on") == "free mode on: done"
    await connector_state(station, ConnectorStatus.AVAILABLE)

    await sim(station, "plug", str(CONNECTOR), "--soc", "30")

    start = await csms.wait_for_call("StartTransaction", timeout_s=20)
    assert (start.payload["connectorId"], start.payload["idTag"]) == (CONNECTOR, DEFAULT_FREE_MODE_ID_TAG)
    assert not csms.calls("Authorize"), "a free session is not authorized"
    state = await connector_state(station, ConnectorStatus.CHARGING)
    assert state.id_tag == DEFAULT_FREE_MODE_ID_TAG

    await sim(station, "unplug", str(CONNECTOR))
    await csms.wait_for_call("StopTransaction", timeout_s=20)
    assert await manage_station(station, "free-mode", "off") == "free mode off: done"
