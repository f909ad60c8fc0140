"""The whole station (`chargepoint --sim`, every service) starts, beats, talks to a real CSMS
and stops cleanly: the end-to-end fixture (tests/support/station.py) checked on itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bus import contract
from bus.enums import ChildStatus
from tests.support.station import Station
from tests.support.waiting import wait_until
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
        assert [connector["id"] for connector in status["connectors"]] == [1, 2, 3, 4]
    finally:
        await csms.stop()


def test_in_simulation_the_drivers_start_once_the_simulated_devices_answer(
        start_station: Callable[..., Station]) -> None:
    """chargepoint holds the other services until the simulator reports ready, so a station
    started in simulation does not begin with a burst of 'device does not answer' errors."""
    station = start_station("ws://127.0.0.1:9/ocpp", only=["sim", "counters", "smartw"])
    children = station.children()
    assert children["counters"].started_at > children["sim"].started_at
    wait_until(lambda: station.bus.get(contract.METER, meter="connector1"), what="a first meter reading")
    wait_until(lambda: station.bus.get(contract.STATION), what="smartw's first station state")
    assert station.bus.get(contract.STATION).io_online
    noise = [line for line in station.output().splitlines()
             if " ERROR " in line and ("[counters]" in line or "[smartw]" in line)]
    assert not noise, "\n".join(noise)
