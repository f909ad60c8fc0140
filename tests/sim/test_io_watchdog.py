"""The IO module's host watchdog as the IO lease: the station's driver programs it (ICP DAS map:
safe values 00129.., timeout 40489, enable 00261) on a simulated module that was not
commissioned with one, and the module drops its coils to their safe values once polling stops.
Real drivers, a real pymodbus server; the simulator's physics runs on its own ticker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.sim.test_io_sim import IO, SimIo, start
from tests.support.waiting import async_wait_until
from workers.common.station_config import IoModuleConfig
from workers.drivers.io_module import (
    SAFE_VALUE_COIL_BASE,
    WATCHDOG_ENABLE_COIL,
    WATCHDOG_TIMEOUT_REGISTER,
    IoModule,
)
from workers.drivers.registers import FunctionCode

FAN = 4


@dataclass
class Rig:
    sim: SimIo
    ticks: asyncio.Task[None]

    def driver(self, **config: object) -> IoModule:
        """The station's driver with its own `[io_module]` settings on the same module."""
        io_config = self.sim.driver.config.model_copy(update=config)
        return IoModule(self.sim.hub, io_config, self.sim.driver.contactors)

    async def programmed(self) -> tuple[bool, int]:
        enabled = await self.sim.hub.read_bits(IO, FunctionCode.READ_COILS, WATCHDOG_ENABLE_COIL, 1)
        timeout = await self.sim.hub.read_registers(IO, FunctionCode.READ_HOLDING_REGISTERS,
                                                    WATCHDOG_TIMEOUT_REGISTER, 1)
        return enabled[0], timeout[0]


async def _tick_forever(sim: SimIo) -> None:
    while True:
        await sim.io.tick()
        await asyncio.sleep(0.02)


@pytest.fixture
async def rig(request) -> AsyncIterator[Rig]:
    sim_io, server = await start(getattr(request, "param", "bits"))  # no watchdog commissioned
    ticks = asyncio.create_task(_tick_forever(sim_io))
    try:
        yield Rig(sim_io, ticks)
    finally:
        ticks.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticks
        sim_io.io.detach()
        await sim_io.hub.close()
        await server.shutdown()


@pytest.mark.parametrize(("watchdog_s", "word"), [(0.5, 5), (2.0, 20)])
async def test_the_first_poll_programs_the_watchdog(rig: Rig, watchdog_s: float, word: int) -> None:
    assert await rig.programmed() == (False, 0)
    driver = rig.driver(watchdog_s=watchdog_s)
    await driver.poll()
    assert await rig.programmed() == (True, word)
    safe = await rig.sim.hub.read_bits(IO, FunctionCode.READ_COILS, SAFE_VALUE_COIL_BASE, FAN + 1)
    assert safe == [False] * (FAN + 1)


def test_a_two_second_watchdog_fits_a_station_polling_every_200_ms() -> None:
    config = IoModuleConfig(bus="b", device_id=IO, poll_s=0.2, watchdog_s=2.0, inputs={"estop": 0})
    assert config.watchdog_s == 2.0


async def test_the_coils_drop_once_the_station_stops_polling(rig: Rig) -> None:
    driver = rig.driver(watchdog_s=0.5)
    await driver.poll()
    await driver.set_contactor(1, True)  # the station's last word
    last_access = time.monotonic()
    await async_wait_until(lambda: _conducts(rig, True), timeout_s=0.4, what="contactor 1 closed")
    await async_wait_until(lambda: _conducts(rig, False), timeout_s=0.5, what="coil dropped")
    assert time.monotonic() - last_access >= 0.45, "the coil held while the station was within time"
    assert not (await driver.poll()).outputs_as_commanded


async def test_the_outputs_take_their_safe_values(rig: Rig) -> None:
    driver = rig.driver(watchdog_s=0.5)
    await driver.poll()
    await rig.sim.hub.write_coil(IO, SAFE_VALUE_COIL_BASE + FAN, True)  # a technician's choice: fans on
    await driver.set_contactor(1, True)
    await async_wait_until(lambda: _conducts(rig, True), timeout_s=0.4, what="contactor 1 closed")
    await async_wait_until(lambda: _conducts(rig, False), timeout_s=1, what="coil dropped")
    coils = await rig.sim.hub.read_bits(IO, FunctionCode.READ_COILS, 0, FAN + 1)
    assert (coils[0], coils[FAN]) == (False, True)


async def test_without_watchdog_s_nothing_is_programmed_and_the_coils_hold(rig: Rig) -> None:
    driver = rig.driver()
    await driver.poll()
    await driver.set_contactor(1, True)
    await async_wait_until(lambda: _conducts(rig, True), timeout_s=2, what="contactor 1 closed")
    await asyncio.sleep(0.6)  # longer than any watchdog above: nothing may drop
    assert rig.sim.io.conducts(1)
    assert await rig.programmed() == (False, 0)


@pytest.mark.parametrize("rig", ["owen"], indirect=True)
async def test_an_owen_module_is_not_programmed_and_the_driver_says_so_once(rig: Rig, caplog) -> None:
    driver = rig.driver(watchdog_s=0.5)
    with caplog.at_level(logging.WARNING, logger="workers.drivers.io_module"):
        await driver.poll()
        await driver.poll()
    assert [record.message for record in caplog.records] == [
        "IO module: Owen modules' network timeout is set with Owen's configurator, not over Modbus; "
        "set it to 0.5 s on the module"]


async def _conducts(rig: Rig, closed: bool) -> bool:
    return rig.sim.io.conducts(1) is closed
