"""Play smartw's power-module part in simulator tests: the real Infypower driver, through the
simulated USB-CAN (slcan) adapter, switches modules on at a voltage and current limit, so a
simulated DC EV whose link contactors conduct gets current from them (workers/sim/dc_supply.py).
The driver re-sends the setpoints, so the modules' silence timeout does not switch them off."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bus import Bus
from tests.support.waiting import async_wait_until
from workers.common.device_status import DeviceStatusPublisher
from workers.common.power_config import PowerModulesConfig
from workers.drivers.infypower import InfypowerModules


@dataclass
class ModuleFeed:
    driver: InfypowerModules
    addresses: dict[str, int]  # pm1..pmN -> CAN address

    async def switch_on(self, modules: Iterable[str], *, voltage_v: float, current_a: float) -> None:
        for name in modules:
            await self.driver.set_output(self.addresses[name], voltage_v, current_a)
            await self.driver.set_on(self.addresses[name], True)

    def current_a(self, module: str) -> float | None:
        """The module's current as last polled over CAN; None when the last poll failed."""
        reading = self.driver.reading(self.addresses[module])
        return reading.current_a if reading is not None else None


@asynccontextmanager
async def module_feed(config: PowerModulesConfig, bus: Bus) -> AsyncIterator[ModuleFeed]:
    """The driver on the simulator's adapter with every module polled; stopped (every module
    switched off) on exit."""
    driver = InfypowerModules.from_config(config, DeviceStatusPublisher(bus))
    addresses = dict(zip(config.module_names(), config.module_addresses(), strict=True))
    driver.start()
    try:
        async def every_module_polled() -> bool:
            return all(driver.reading(address) is not None for address in addresses.values())

        await async_wait_until(every_module_polled, what="every power module polled over CAN")
        yield ModuleFeed(driver, addresses)
    finally:
        await driver.stop()
