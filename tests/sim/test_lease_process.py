"""A lease end to end: the real driver offers power to the running simulator (`python -m
workers.sim`, ops/station.sim.toml) over its RS485 line with a 1 s lease, then falls silent as a
dead smartw would; the CCS output must be zero soon after the lease has run out. The EV's
current comes from power module pm1, switched on over CAN, through its link to connector 1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from bus import Bus, contract
from bus.messages import SimAction
from tests.sim.module_feed import module_feed
from tests.sim.processes import SimStation
from tests.support.hardware import io_keepalive, load_config, tool_hubs
from tests.support.waiting import async_wait_until
from workers.drivers.controllers.interface import ControllerSnapshot, LeaseState
from workers.drivers.controllers.station_dc import StationDcController
from workers.drivers.modbus_hub import ModbusHub

IO, CCS_COIL, CCS_CTRL = 10, 0, 21
PM1_TO_CCS_COIL = 10  # link pm1>1
LEASE_S = 1.0
SETTLE_S = 1.0  # the simulator's physics step (0.25 s) and the current's ramp-down after the lease


@pytest.fixture
async def hubs(sim_station: SimStation) -> AsyncIterator[dict[str, ModbusHub]]:
    tool = tool_hubs(load_config(sim_station.files.config))
    try:
        yield tool
    finally:
        for hub in tool.values():
            await hub.close()


async def test_output_falls_to_zero_once_the_station_stops_renewing_its_lease(
        bus: Bus, hubs: dict[str, ModbusHub], sim_station: SimStation) -> None:
    modules = load_config(sim_station.files.config).power_modules
    assert modules is not None
    # Only the controller's lease runs out here: the IO module's watchdog is kept fed.
    async with module_feed(modules, bus) as feed, io_keepalive(load_config(sim_station.files.config)):
        await feed.switch_on(["pm1"], voltage_v=410.0, current_a=100.0)
        await hubs["sim_tcp"].write_coil(IO, PM1_TO_CCS_COIL, True)
        await _lease_runs_out(bus, hubs)


async def _lease_runs_out(bus: Bus, hubs: dict[str, ModbusHub]) -> None:
    plugged = await bus.request(contract.SIM, SimAction(action="plug", connector_id=1, soc=30, target_soc=90,
                                                        max_power_kw=120))
    assert plugged.accepted, plugged.reason
    await hubs["sim_tcp"].write_coil(IO, CCS_COIL, True)
    driver = StationDcController(hubs["rs485_controllers"], CCS_CTRL)

    async def renewed_and_flowing() -> ControllerSnapshot | None:
        await driver.set_output(True, 50_000.0, lease_s=LEASE_S)
        snapshot = await driver.poll()
        return snapshot if (snapshot.present.current_a or 0.0) > 0 else None

    charging = await async_wait_until(renewed_and_flowing, timeout_s=20, what="current with a renewed lease")
    assert charging.lease is LeaseState.RUNNING
    last_write = time.monotonic()

    async def output_zero() -> ControllerSnapshot | None:
        snapshot = await driver.poll()
        return snapshot if snapshot.present.current_a == 0.0 else None

    stopped = await async_wait_until(output_zero, timeout_s=LEASE_S + SETTLE_S, what="zero output")
    assert time.monotonic() - last_write >= LEASE_S * 0.9, "the output held while the lease ran"
    assert stopped.lease is LeaseState.EXPIRED
    assert await driver.read_output() == (False, 0.0)
