"""The simulated station-protocol controller holds the station's lease (protocol v2): a CCS
session driven through the real driver on a real pymodbus server, with the lease's clock in
the test's hand. Output drops to zero when the lease runs out, stays there through writes
that do not set `enable`, and resumes only on a new enable write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.sim.test_ev_controller_wire import DEVICE_ID, SCALE, STEP_S, connector, served
from workers.drivers.controllers.interface import LeaseState, OutputLimits, SessionPhase
from workers.drivers.controllers.station_dc import HoldingRegister, StationDcController
from workers.drivers.errors import DeviceError
from workers.sim.ev import Battery, SimulatedEv
from workers.sim.ev_controller import SimulatedController

MAX_KW = 100.0


@dataclass
class Clock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class LeaseRig:
    controller: SimulatedController
    driver: StationDcController
    clock: Clock

    def run(self, nominal_s: float) -> None:
        for _ in range(round(nominal_s / (STEP_S / SCALE))):
            self.controller.step(live=True, dt_s=STEP_S)

    async def charge(self) -> None:
        """Plug a CCS EV and offer 50 kW with a 1 s lease, refreshed while the clock stands still."""
        self.controller.plug(SimulatedEv(Battery(60.0, 20.0), target_soc=80.0, max_power_w=MAX_KW * 1000))
        for _ in range(40):
            await self.driver.set_output(True, 50_000.0, lease_s=1.0)
            self.run(0.5)
            if ((await self.driver.poll()).present.current_a or 0.0) > 0:
                return
        raise AssertionError(f"no current; last {await self.driver.poll()}")


@pytest.fixture
async def rig() -> AsyncIterator[LeaseRig]:
    clock = Clock()
    controller = SimulatedController(connector("CCS"), time_scale=SCALE, clock=clock)
    async with served(controller) as hub:
        yield LeaseRig(controller, StationDcController(hub, DEVICE_ID), clock)


async def test_output_drops_to_zero_when_the_lease_runs_out(rig: LeaseRig) -> None:
    await rig.charge()
    assert (await rig.driver.poll()).lease is LeaseState.RUNNING
    rig.clock.now += 0.9
    rig.run(0.5)
    assert rig.controller.command.enabled, "the lease still holds"
    rig.clock.now += 0.1
    rig.run(0.1)
    assert not rig.controller.command.enabled
    assert rig.controller.command.limits.power_w == 0.0
    assert await rig.driver.read_output() == (False, 0.0)
    rig.run(3.0)  # nominal seconds: the session ramps down as on a station's stop
    snapshot = await rig.driver.poll()
    assert (snapshot.lease, snapshot.present.current_a) == (LeaseState.EXPIRED, 0.0)
    assert snapshot.phase in (SessionPhase.WELDING_DETECTION, SessionPhase.FINISHED)


async def test_only_a_new_enable_write_resumes_after_expiry(rig: LeaseRig) -> None:
    await rig.charge()
    rig.clock.now += 1.0
    rig.run(0.1)
    await rig.driver.set_limits(OutputLimits(power_w=50_000.0), lease_s=1.0)
    rig.run(0.5)
    assert not rig.controller.command.enabled, "a limits write does not resume"
    assert (await rig.driver.poll()).lease is LeaseState.EXPIRED
    await rig.driver.set_output(True, 50_000.0, lease_s=1.0)
    assert rig.controller.command.enabled
    assert (await rig.driver.poll()).lease is LeaseState.RUNNING


async def test_without_a_lease_the_output_holds_however_long_the_station_is_silent(rig: LeaseRig) -> None:
    await rig.charge()
    await rig.driver.set_output(True, 50_000.0)  # lease_ds stays 10: the lease restarts with it
    await rig.driver.hub.write_registers(DEVICE_ID, HoldingRegister.LEASE_DS, [0])
    rig.clock.now += 3_600.0
    rig.run(0.5)
    snapshot = await rig.driver.poll()
    assert rig.controller.command.enabled and snapshot.lease is LeaseState.NONE
    assert (snapshot.present.current_a or 0.0) > 0


async def test_a_lease_beyond_the_protocol_is_refused_with_exception_03(rig: LeaseRig) -> None:
    with pytest.raises(DeviceError, match="exception 3"):
        await rig.driver.hub.write_registers(DEVICE_ID, HoldingRegister.LEASE_DS, [601])
    assert await rig.driver.read_lease() is None


async def test_the_bootloader_forgets_the_lease_with_the_other_volatile_settings(rig: LeaseRig) -> None:
    await rig.driver.set_enabled(False, lease_s=2.0)
    assert await rig.driver.read_lease() == 2.0
    await rig.driver.enter_bootloader()
    rig.controller.leave_bootloader()
    assert await rig.driver.read_lease() is None
