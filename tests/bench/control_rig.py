"""The whole station in this one process, for tests/bench/control.py (import it only after
tests/bench/control_env.py has set Django up).

- The simulator as the `sim` service builds it (SimHardware: IO module and IMD on Modbus TCP,
  controllers and meters on RS485 ptys, power modules behind the slcan pty) and its physics
  step every `workers.sim.service.TICK_S`.
- counters (CountersService.run), so sessions get their meter readings.
- smartw: ModbusStationHardware, the Infypower driver and StationLogic built as SmartwService.run
  builds them, run by SmartwService's own loops (`_guard_loop`, `_control_loop`,
  `_power_module_loop`, called directly so the cadence is smartw's, not a copy of it). The
  bench holds these objects so it can close contactors through smartw's own IO driver (any
  other writer would make smartw see its outputs changed behind its back), start and stop
  sessions through `logic.requests` (no bus round trip), and time one CAN round trip on
  smartw's own adapter. The database is fresh, so there are no orphan sessions to close.

The simulated IO module's coil table (what smartw last wrote) is read in-process, where
smartw's driver finds it (`plan_reads`), without a Modbus round trip. pymodbus runs the
device's action for it as for a host read: the simulated module only notes the access for its
host watchdog, which ops/station.sim.toml leaves off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from bus import Bus
from bus.tasks import cancel_and_wait
from workers.common.station_config import StationConfig, load_from_settings
from workers.counters.service import CountersService
from workers.drivers.infypower import InfypowerModules
from workers.drivers.io_layout import WireBit, WireImage, layout_for, plan_reads
from workers.drivers.io_module import ContactorKey
from workers.sim.io_module import SimIoModule
from workers.sim.power_modules import SimulatedPowerModule
from workers.sim.service import MAX_STEP_S, TICK_S, SimHardware
from workers.sim.station import SimStation
from workers.smartw.modbus_hardware import ModbusStationHardware
from workers.smartw.power_modules import power_modules
from workers.smartw.service import SmartwService
from workers.smartw.station import StationLogic

log = logging.getLogger(__name__)

STOP_S = 5.0  # how long the services' loops may take to notice `stopping`
LAG_PROBE_S = 0.01


class LoopLag:
    """How late the event loop wakes a sleeper: the stalls that every figure of this one
    process shares (the simulator's answers included)."""

    def __init__(self) -> None:
        self.samples_s: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            self.samples_s.append(loop.time() - started - LAG_PROBE_S)


@dataclass
class BenchStation:
    config: StationConfig
    sim: SimHardware
    logic: StationLogic
    hardware: ModbusStationHardware  # smartw's
    modules: InfypowerModules  # smartw's CAN driver
    loop_lag: LoopLag

    @property
    def station(self) -> SimStation:
        return self.sim.station

    @property
    def io(self) -> SimIoModule:
        return self.sim.station.io

    def power_module(self, name: str) -> SimulatedPowerModule:
        assert self.sim.power_modules is not None
        return self.sim.power_modules.bank.module(name)

    def linked_modules(self, connector_id: int) -> list[SimulatedPowerModule]:
        """The simulated modules whose link to the connector conducts now."""
        assert self.sim.power_modules is not None
        return [module for module in self.sim.power_modules.bank.modules
                if self.io.link_conducts(module.name, connector_id)]

    async def coils_on(self) -> set[ContactorKey]:
        """Every contactor and link whose coil is on in the simulated IO module's table."""
        layout = layout_for(self.config.io_module)
        wires: dict[ContactorKey, WireBit] = {key: layout.output_bit(coil)
                                              for key, coil in self.io.coils.items()}
        server = self.station.servers[self.config.io_module.bus]
        image = WireImage()
        for request in plan_reads(wires.values()):
            image.store(request, await server.async_getValues(request.device_id, request.table,
                                                              request.address, request.count))
        return {key for key, wire in wires.items() if image.level(wire)}

    async def close_through_smartw(self, connectors: Iterable[int], links: Iterable[tuple[str, int]]) -> None:
        """Close connector contactors and module links with smartw's own IO driver."""
        for connector_id in connectors:
            await self.hardware.set_contactor(connector_id, True)
        for module, connector_id in links:
            await self.hardware.set_link(module, connector_id, True)


async def _physics(station: SimStation) -> None:
    """The sim service's physics loop: the world moves on every TICK_S."""
    loop = asyncio.get_running_loop()
    last = loop.time()
    while True:
        await asyncio.sleep(TICK_S)
        now = loop.time()
        await station.tick(min(now - last, MAX_STEP_S))
        last = now


def _service(service: CountersService | SmartwService, redis_url: str) -> None:
    """What Service.main gives a service before `run()`: its bus and its stop event."""
    service.bus = Bus(service.name, redis_url)
    service.stopping = asyncio.Event()


@asynccontextmanager
async def bench_station(redis_url: str) -> AsyncIterator[BenchStation]:
    """The simulator, counters and smartw running; on exit smartw leaves the hardware safe
    (SmartwService's shutdown) and everything stops."""
    config = load_from_settings()
    assert config.power_modules is not None, "the bench needs [power_modules]"
    sim = await SimHardware.start(config, settings.STATION_ENV.run_dir)
    counters, smartw = CountersService(), SmartwService()
    _service(counters, redis_url)
    _service(smartw, redis_url)
    hardware = ModbusStationHardware(config)
    modules = power_modules(smartw.bus, config.power_modules)
    logic = StationLogic(config, smartw.bus, hardware, power_modules=modules)
    await hardware.open_all(emergency=False)
    period_s = config.io_module.poll_s
    lag = LoopLag()
    background = [asyncio.create_task(_physics(sim.station)), asyncio.create_task(lag.run())]
    loops: list[Coroutine[Any, Any, None]] = [
        counters.run(), smartw._power_module_loop(modules),
        smartw._guard_loop(logic, period_s), smartw._control_loop(logic, period_s)]
    services = [asyncio.create_task(loop) for loop in loops]
    try:
        yield BenchStation(config, sim, logic, hardware, modules, lag)
    finally:
        counters.stopping.set()
        smartw.stopping.set()
        await asyncio.wait(services, timeout=STOP_S)  # their loops end on `stopping`
        await cancel_and_wait([*services, *background])
        for task in services:
            if not task.cancelled() and task.exception() is not None:
                log.error("a service loop crashed during the bench", exc_info=task.exception())
        await smartw._shutdown(logic)
        await hardware.close()
        await sim.stop()
        await counters.bus.close()
        await smartw.bus.close()
