"""The whole station (`chargepoint --sim`, every service) starts, beats, talks to a real CSMS
and stops cleanly: the end-to-end fixture (tests/support/station.py) checked on itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bus.enums import ChildStatus
from tests.support.station import Station
from workers.chargepoint.services import select
from workers.sim.csms import Csms

pytestmark = pytest.mark.e2e


async def test_whole_station_starts_every_service_and_boots_at_the_csms(
        start_station: Callable[..., Station]) -> None:
    csms = Csms()
    await csms.start()
    try:
        # The fixture blocks while it waits; the CSMS must keep answering meanwhile.
        station = await asyncio.to_thread(start_station, csms.url)
        children = station.children()
        assert sorted(children) == sorted(spec.name for spec in select(sim=True))
        troubled = {name: (child.status, child.restarts, child.last_exit_code)
                    for name, child in children.items()
                    if child.status is not ChildStatus.RUNNING or child.restarts}
        assert not troubled, f"{troubled}\n{station.output()[-4000:]}"
        await csms.wait_for_call("BootNotification", timeout_s=30)
        status = await asyncio.to_thread(station.status)
        assert [connector["id"] for connector in status["connectors"]] == [1, 2]
    finally:
        await csms.stop()
