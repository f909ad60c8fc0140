"""The `sim` service: every simulated device of station.toml, and the bus command driving them.

Provides: command contract.SIM (SimAction -> CommandResult); Modbus TCP servers on each
`[buses.*]` port; the EM4100 reader's pty, linked at `[rfid].port`.
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
from workers.common.station_config import ConfigError, StationConfig, load_from_settings
from workers.sim.commands import SimCommands
from workers.sim.rfid_port import RfidLinkError, SimulatedReader
from workers.sim.station import SimConfigError, SimStartError, SimStation

log = logging.getLogger(__name__)

TICK_S = 0.25  # physics step: meters and controllers change 4 times a second
MAX_STEP_S = 1.0  # a stalled loop does not turn into one huge energy jump
SAVE_EVERY_S = 5.0  # how often the meters' registers are written to the state file
STATE_FILE = "sim-meters.json"


@dataclass
class SimHardware:
    station: SimStation
    reader: SimulatedReader
    commands: SimCommands

    @classmethod
    async def start(cls, config: StationConfig, run_dir: Path) -> SimHardware:
        station = SimStation(config, run_dir / STATE_FILE)
        reader = SimulatedReader(Path(config.rfid.port))
        reader.open()
        try:
            await station.start()
        except BaseException:
            reader.close()
            await station.stop()
            raise
        return cls(station, reader, SimCommands(station, reader))

    async def stop(self) -> None:
        """The reader's link first: it is what a restarting simulator or rfid trips over."""
        self.reader.close()
        await self.station.stop()


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
        serve = asyncio.create_task(self.bus.serve(contract.SIM, hardware.commands.handle,
                                                   stop=self.stopping), name="sim.serve")
        try:
            done, _ = await asyncio.wait({serve, physics}, return_when=asyncio.FIRST_COMPLETED)
            if serve in done:
                serve.result()  # a Redis error propagates; the devices stay up
            await physics  # stopping: the loop ends and stops the devices; a crash raises here
        finally:
            serve.cancel()
            await asyncio.gather(serve, return_exceptions=True)

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
