"""The `counters` service: each connector's meter, polled at its `poll_s`, -> contract.METER.

Provides: keys contract.METER, meter=f"connector{id}" (MeterReading), written every poll with
a TTL of `STALE_AFTER_POLLS` poll periods, so a meter that stops answering goes stale
(the key expires) instead of showing an old reading as current.
Requires: station.toml connectors[].meter (bus, device_id, model, poll_s) and [buses.*].

A meter that stops answering is logged once at ERROR, and once at INFO when it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from bus import Service, contract
from bus.messages import MeterReading
from workers.common.station_config import ConnectorConfig, load_from_settings
from workers.drivers.errors import DeviceError
from workers.drivers.meter import MeterDriver, MeterSnapshot
from workers.drivers.modbus_hub import ModbusHub, open_hubs

log = logging.getLogger(__name__)

STALE_AFTER_POLLS = 3


def meter_name(connector_id: int) -> str:
    return f"connector{connector_id}"


class MeterPoller:
    """Polls one meter; remembers whether it is failing so an outage is logged once."""

    def __init__(self, name: str, driver: MeterDriver, poll_s: float) -> None:
        self.name = name
        self.driver = driver
        self.poll_s = poll_s
        self.failing = False
        self._last_energy_wh: float | None = None

    @classmethod
    def for_connector(cls, connector: ConnectorConfig, hubs: dict[str, ModbusHub]) -> MeterPoller:
        meter = connector.meter
        driver = MeterDriver(hubs[meter.bus], meter.device_id, meter.model)
        return cls(meter_name(connector.id), driver, meter.poll_s)

    async def read(self) -> MeterSnapshot | None:
        """One poll: the snapshot, or None while the meter does not answer."""
        try:
            snapshot = await self.driver.poll()
        except DeviceError as error:
            if not self.failing:
                log.error("meter %s stopped answering (%s); its reading goes stale", self.name, error)
            self.failing = True
            return None
        if self.failing:
            log.info("meter %s answers again", self.name)
            self.failing = False
        if self._last_energy_wh is not None and snapshot.energy_wh < self._last_energy_wh:
            log.warning("meter %s register went back from %.1f to %.1f Wh (meter replaced or reset?)",
                        self.name, self._last_energy_wh, snapshot.energy_wh)
        self._last_energy_wh = snapshot.energy_wh
        return snapshot


class CountersService(Service):
    name = "counters"

    async def run(self) -> None:
        config = load_from_settings()
        hubs = open_hubs(config)
        pollers = [MeterPoller.for_connector(connector, hubs) for connector in config.connectors]
        try:
            await _run_all([self._poll_forever(poller) for poller in pollers])
        finally:
            for hub in hubs.values():
                await hub.close()

    async def _poll_forever(self, poller: MeterPoller) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            started = loop.time()
            snapshot = await poller.read()
            if snapshot is not None:
                await self._publish(poller, snapshot)
            if not await self.sleep(max(0.0, poller.poll_s - (loop.time() - started))):
                return

    async def _publish(self, poller: MeterPoller, snapshot: MeterSnapshot) -> None:
        reading = MeterReading(meter=poller.name, energy_wh=snapshot.energy_wh, power_w=snapshot.power_w,
                               voltage_v=snapshot.voltage_v, current_a=snapshot.current_a)
        await self.bus.set(contract.METER, reading, ttl_s=STALE_AFTER_POLLS * poller.poll_s,
                           meter=poller.name)


async def _run_all(jobs: list[Coroutine[Any, Any, None]]) -> None:
    """Run the pollers together; the first one to fail (e.g. Redis lost) stops the others and
    its exception propagates unchanged, so the base class can reconnect."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
