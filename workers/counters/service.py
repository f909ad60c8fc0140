"""The `counters` service: every meter of the station, each at its own `poll_s`, -> contract.METER.

Provides: keys contract.METER, meter=f"connector{id}" (one per connector) and meter="station"
(the optional grid meter, `[station.meter]`), written every poll with a TTL of
`STALE_AFTER_POLLS` poll periods, so a meter that stops answering goes stale (the key expires)
instead of showing an old reading as current; contract.DEVICE / DEVICE_CHANGES for each meter
("meter:connector1", "meter:station"): unavailable after two failed polls, available again on
the first good one, with a fault while a reading's energy is refused.
Requires: station.toml connectors[].meter / station.meter (bus, device_id, model, poll_s), [buses.*].

Billing: `energy_wh` is the billing register of workers/counters/plausibility.py: energy that
goes backwards or jumps beyond what the connector (or the grid connection) could deliver is
flagged in `anomaly` and not billed. The billing offsets are kept in
STATION_DATA_DIR/run/counters-billing.json so a restart does not bring a refused jump back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from bus import Service, contract
from bus.messages import MeterReading
from bus.tasks import run_all
from workers.common.device_status import DeviceStatusPublisher
from workers.common.station_config import MeterConfig, StationConfig, load_from_settings
from workers.counters.plausibility import EnergyGuard
from workers.drivers.errors import DeviceError
from workers.drivers.mercury import MercuryLine
from workers.drivers.meter import MeterSnapshot
from workers.drivers.meter_factory import MeterReader, open_meter_driver
from workers.drivers.modbus_hub import open_hubs

log = logging.getLogger(__name__)

STALE_AFTER_POLLS = 3
STATION_METER = "station"
OFFSETS_FILE = "counters-billing.json"


def meter_name(connector_id: int) -> str:
    return f"connector{connector_id}"


@dataclass(frozen=True)
class MeterPlan:
    """One meter to poll: its bus name, its wiring and the most power it can see."""

    name: str
    config: MeterConfig
    max_power_w: float


def plan_meters(config: StationConfig) -> list[MeterPlan]:
    plans = [MeterPlan(meter_name(c.id), c.meter, c.max_power_kw * 1000.0) for c in config.connectors]
    if config.station.meter is not None:
        plans.append(MeterPlan(STATION_METER, config.station.meter, config.station.max_power_kw * 1000.0))
    return plans


class MeterPoller:
    """Polls one meter; remembers whether it is failing so an outage is logged once."""

    def __init__(self, plan: MeterPlan, driver: MeterReader, offset_wh: float = 0.0) -> None:
        self.name = plan.name
        self.device = f"meter:{plan.name}"
        self.bus_name = plan.config.bus
        self.driver = driver
        self.poll_s = plan.config.poll_s
        self.guard = EnergyGuard(plan.max_power_w, offset_wh)
        self.failing = False


    async def read(self) -> MeterSnapshot | DeviceError:
        """One poll: the snapshot, or the error while the meter does not answer."""
        try:
            snapshot = await self.driver.poll()
        except DeviceError as error:
            if not self.failing:
                log.error("meter %s stopped answering (%s); its reading goes stale", self.name, error)
            self.failing = True
            return error
        if self.failing:
            log.info("meter %s answers again", self.name)
            self.failing = False
        return snapshot

    def reading(self, snapshot: MeterSnapshot, now_s: float) -> MeterReading:
        judged = self.guard.judge(snapshot.energy_wh, now_s)
        if judged.anomaly is not None:
            log.warning("meter %s: %s (%s); not billed", self.name, judged.anomaly, judged.detail)
        return MeterReading(meter=self.name, energy_wh=judged.billing_wh, power_w=snapshot.power_w,
                            voltage_v=snapshot.voltage_v, current_a=snapshot.current_a,
                            power_l1_w=snapshot.power_l1_w, power_l2_w=snapshot.power_l2_w,
                            power_l3_w=snapshot.power_l3_w, voltage_l2_v=snapshot.voltage_l2_v,
                            voltage_l3_v=snapshot.voltage_l3_v, current_l2_a=snapshot.current_l2_a,
                            current_l3_a=snapshot.current_l3_a, register_wh=snapshot.energy_wh,
                            anomaly=judged.anomaly.value if judged.anomaly else None)


class BillingOffsets:
    """The guards' offsets on disk (small JSON, replaced atomically), by meter name."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, float]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(name): float(value) for name, value in raw.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError) as error:
            log.error("billing offsets %s unreadable (%s); meters bill from their registers",
                      self.path, error)
            return {}

    def save(self, offsets: dict[str, float]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(offsets, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.path)


class CountersService(Service):
    name = "counters"

    async def run(self) -> None:
        from django.conf import settings

        config = load_from_settings()
        self.offsets = BillingOffsets(settings.STATION_ENV.run_dir / OFFSETS_FILE)
        self.devices = DeviceStatusPublisher(self.bus)
        saved = self.offsets.load()
        hubs = open_hubs(config)
        lines: dict[str, MercuryLine] = {}
        try:
            self.pollers = [
                MeterPoller(plan, open_meter_driver(plan.config, config.buses[plan.config.bus], hubs, lines),
                            saved.get(plan.name, 0.0))
                for plan in plan_meters(config)]
            await run_all(*(self._poll_forever(poller) for poller in self.pollers))
        finally:
            for hub in hubs.values():
                await hub.close()
            for line in lines.values():
                line.close()

    async def _poll_forever(self, poller: MeterPoller) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            started = loop.time()
            result = await poller.read()
            if isinstance(result, DeviceError):
                await self.devices.failed(poller.device, result.reason, bus_name=poller.bus_name)
            else:
                await self._publish(poller, poller.reading(result, started))
            if not await self.sleep(max(0.0, poller.poll_s - (loop.time() - started))):
                return

    async def _publish(self, poller: MeterPoller, reading: MeterReading) -> None:
        if reading.anomaly is not None:
            self.offsets.save({p.name: p.guard.offset_wh for p in self.pollers})
        await self.bus.set(contract.METER, reading, ttl_s=STALE_AFTER_POLLS * poller.poll_s,
                           meter=poller.name)
        await self.devices.succeeded(poller.device, bus_name=poller.bus_name, fault=reading.anomaly)


