"""The `sim` service: every simulated device of station.toml, and the bus command driving them.

Provides: commands contract.SIM (SimAction -> CommandResult) and contract.SIM_DEVICES (the
device names for `sim list`); every device of station.toml on its own wire: Modbus TCP servers,
Modbus RTU lines and Mercury meters on pseudo-terminals, the card reader (EM4100 or PN532) on a
pty linked at `[rfid].port`, the power modules behind a simulated slcan USB-CAN adapter.
Requires: station.toml (STATION_CONFIG); writes `sim-meters.json` under STATION_DATA_DIR/run.

The devices (Modbus servers, the RFID pty, the physics loop) start once and stay up while
the service reconnects to Redis, as hardware would; they stop when the service stops.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from bus import Service, contract
from bus.tasks import cancel_and_wait
from workers.common.station_config import ConfigError, PowerModulesConfig, StationConfig, load_from_settings
from workers.sim.commands import SimCommands
from workers.sim.faults import DeviceRegistry
from workers.sim.pn532_port import SimulatedPn532
from workers.sim.power_modules import PowerModuleBank
from workers.sim.rfid_port import RfidLinkError, SimulatedCardReader, SimulatedReader
from workers.sim.slcan_adapter import SimulatedSlcanAdapter
from workers.sim.station import SimConfigError, SimStartError, SimStation

log = logging.getLogger(__name__)

TICK_S = 0.25  # physics step: meters and controllers change 4 times a second
MAX_STEP_S = 1.0  # a stalled loop does not turn into one huge energy jump
SAVE_EVERY_S = 5.0  # how often the meters' registers are written to the state file
STATE_FILE = "sim-meters.json"


@dataclass
class SimHardware:
    station: SimStation
    reader: SimulatedCardReader
    power_modules: SimulatedCanBus | None
    registry: DeviceRegistry
    commands: SimCommands

    @classmethod
    async def start(cls, config: StationConfig, run_dir: Path) -> SimHardware:
        """The power modules feed the DC connectors through the station's link contactors."""
        modules = SimulatedCanBus.from_config(config.power_modules) if config.power_modules else None
        station = SimStation(config, run_dir / STATE_FILE, modules.bank if modules is not None else None)
        reader_class = SimulatedPn532 if config.rfid.driver == "pn532" else SimulatedReader
        reader: SimulatedCardReader = reader_class(Path(config.rfid.port))
        reader.open()
        try:
            if modules is not None:
                modules.open()
            await station.start()
        except BaseException:
            reader.close()
            if modules is not None:
                await modules.close()
            await station.stop()
            raise
        registry = device_registry(station, reader, modules)
        return cls(station, reader, modules, registry, SimCommands(station, reader, registry))

    async def stop(self) -> None:
        """The links first: they are what a restarting simulator or a driver trips over."""
        self.reader.close()
        if self.power_modules is not None:
            await self.power_modules.close()
        await self.station.stop()


@dataclass
class SimulatedCanBus:
    """The power modules of `[power_modules]` behind their simulated USB-CAN (slcan) adapter."""

    bank: PowerModuleBank
    adapter: SimulatedSlcanAdapter

    @classmethod
    def from_config(cls, config: PowerModulesConfig) -> SimulatedCanBus:
        bank = PowerModuleBank.from_config(config)
        return cls(bank, SimulatedSlcanAdapter(Path(config.channel), bank))

    def open(self) -> None:
        self.adapter.open()
        self.bank.start()

    async def close(self) -> None:
        await self.bank.stop()
        self.adapter.close()


def device_registry(station: SimStation, reader: SimulatedCardReader,
                    modules: SimulatedCanBus | None) -> DeviceRegistry:
    """Every simulated device under the name `sim list` shows. A controller owns its wire
    switch already; the IO module and the IMD combine their wire with their contacts."""
    registry = DeviceRegistry()
    controllers = {connector.controller.name for connector in station.connectors.values()}
    for connector in station.connectors.values():
        registry.add(connector.controller)
        if connector.meter.mercury is not None:
            registry.add(connector.meter.mercury)
    if station.station_meter is not None and station.station_meter.mercury is not None:
        registry.add(station.station_meter.mercury)
    for switch in station.wire_switches():
        if switch.name not in controllers:
            registry.add(switch)
    registry.add(station.io)
    if station.imd is not None:
        registry.add(station.imd)
    registry.add(reader)
    for module in modules.bank.modules if modules is not None else []:
        registry.add(module)
    return registry


class SimService(Service):
    """The devices start with the first `run()` and live in the physics task, which stops
    them when the service stops; a lost Redis ends `run()` (the base class calls it again)
    but leaves the devices up, as hardware does not notice the station's bus."""

    name = "sim"
    ready_at_start = False  # ready once the devices listen: chargepoint starts the drivers then

    def __init__(self) -> None:
        super().__init__()
        self._hardware: SimHardware | None = None
        self._physics: asyncio.Task[None] | None = None

    async def run(self) -> None:
        hardware, physics = await self._ensure_hardware()
        serving = {
            asyncio.create_task(self.bus.serve(contract.SIM, hardware.commands.handle,
                                               stop=self.stopping), name="sim.serve"),
            asyncio.create_task(self.bus.serve(contract.SIM_DEVICES, hardware.commands.list_devices,
                                               stop=self.stopping), name="sim.devices"),
        }
        try:
            done, _ = await asyncio.wait({*serving, physics}, return_when=asyncio.FIRST_COMPLETED)
            for task in serving & done:
                task.result()  # a Redis error propagates; the devices stay up
            await physics  # stopping: the loop ends and stops the devices; a crash raises here
        finally:
            await cancel_and_wait(serving)

    async def _ensure_hardware(self) -> tuple[SimHardware, asyncio.Task[None]]:
        if self._hardware is None or self._physics is None:
            from django.conf import settings

            try:
                self._hardware = await SimHardware.start(load_from_settings(), settings.STATION_ENV.run_dir)
            except (ConfigError, SimConfigError, SimStartError, RfidLinkError) as error:
                log.error("the simulator cannot start: %s", error)
                raise
            self._physics = asyncio.create_task(self._physics_loop(self._hardware),
                                                name="sim.physics")
            self.mark_ready()
        return self._hardware, self._physics

    async def _physics_loop(self, hardware: SimHardware) -> None:
        """Move the world on every TICK_S until the service stops (or this task is cancelled
        when the process ends), then stop the devices: the pty link never outlives the sim."""
        loop = asyncio.get_running_loop()
        last = last_save = loop.time()
        try:
            while await self.sleep(TICK_S):
                now = loop.time()
                await hardware.station.tick(min(now - last, MAX_STEP_S))
                last = now
                if now - last_save >= SAVE_EVERY_S:
                    hardware.station.save()
                    last_save = now
        finally:
            await hardware.stop()
