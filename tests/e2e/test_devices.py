"""Devices going silent in a running station: each is marked unavailable on the bus within two
polls, no stale reading stays on the bus, and recovery is seen; the power modules are on CAN."""

from __future__ import annotations

import pytest

from bus import contract
from bus.messages import DeviceState
from tests.e2e.helpers import sim
from tests.e2e.test_faults import start_remotely
from tests.support.station import BusReader, Station
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


async def device(bus: BusReader, name: str, *, available: bool) -> DeviceState | None:
    state = bus.get(contract.DEVICE, device=name)
    return state if state is not None and state.available is available else None


async def test_a_meter_silent_mid_session_goes_stale_and_comes_back(csms: Csms, station: Station) -> None:
    await start_remotely(csms, station, 1)
    bus = BusReader()
    try:
        assert await async_wait_until(lambda: device(bus, "meter:connector1", available=True),
                                      what="meter:connector1 available")
        await sim(station, "offline", "meter1")
        lost = await async_wait_until(lambda: device(bus, "meter:connector1", available=False),
                                      timeout_s=5, what="meter:connector1 unavailable")  # poll_s 1 s
        assert lost.bus == "rs485_meters" and "no answer" in lost.reason

        async def stale_reading_gone() -> bool:
            return bus.get(contract.METER, meter="connector1") is None
        await async_wait_until(stale_reading_gone, timeout_s=5, what="the last reading to expire")

        await sim(station, "online", "meter1")
        await async_wait_until(lambda: device(bus, "meter:connector1", available=True), timeout_s=5,
                               what="meter:connector1 back")
        assert bus.get(contract.METER, meter="connector1") is not None
    finally:
        bus.close()


async def test_controllers_io_imd_station_meter_and_power_modules_report_their_state(
        station: Station) -> None:
    bus = BusReader()
    try:
        for name in ("controller:1", "controller:2", "io", "imd", "meter:station", "pm1", "pm6", "rfid"):
            await async_wait_until(lambda name=name: device(bus, name, available=True), timeout_s=20,
                                   what=f"{name} available")
        station_meter = bus.get(contract.METER, meter="station")
        assert station_meter is not None and station_meter.power_w > 0  # the cabinet's own load
        module = bus.get(contract.POWER_MODULE, module="pm1")
        assert module is not None and not module.output_on  # off until smartw allocates it

        await sim(station, "offline", "controller2")
        await async_wait_until(lambda: device(bus, "controller:2", available=False), timeout_s=5,
                               what="controller:2 unavailable")
        await sim(station, "offline", "pm3")
        await async_wait_until(lambda: device(bus, "pm3", available=False), timeout_s=5,
                               what="pm3 unavailable")
        await sim(station, "fault", "imd", "insulation")

        async def insulation_fault() -> DeviceState | None:
            state = await device(bus, "imd", available=True)
            return state if state is not None and state.fault == "insulation" else None
        await async_wait_until(insulation_fault, timeout_s=5, what="the IMD reporting an insulation fault")
        await sim(station, "online", "controller2")
        await sim(station, "online", "pm3")
        await async_wait_until(lambda: device(bus, "controller:2", available=True), timeout_s=5,
                               what="controller:2 back")
        await async_wait_until(lambda: device(bus, "pm3", available=True), timeout_s=5, what="pm3 back")
    finally:
        bus.close()
