"""Issue 4's end-to-end scene: CCS, Type 2, CHAdeMO and GB/T charging at once on the simulated
four-connector station (ops/station.sim.toml), more demand than the station's 160 kW.

Everything goes through the real parts: the CSMS starts each session, smartw shares the power
(workers/smartw/power_control.py), moves the six power modules over the contactor matrix
to the three DC connectors, the simulated modules feed the DC EVs only through closed links
(workers/sim/dc_supply.py), and the meters show what flowed. Sharing throttles, never stops;
when the sessions end every link opens with no current through it.
"""

from __future__ import annotations

import pytest

from bus import contract
from bus.messages import MeterReading
from tests.e2e.conftest import CHARGE_POINT_ID
from tests.e2e.helpers import sim, status_notification
from tests.support.station import BusReader, Station
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

STATION_LIMIT_W = 160_000.0  # ops/station.sim.toml [station].max_power_kw
CABINET_W = 350.0  # the simulated cabinet's own load on the station meter
CONNECTORS = {1: "CCS", 2: "Type2", 3: "CHAdeMO", 4: "GBT"}
MODULES = [f"pm{n}" for n in range(1, 7)]
CHARGING_W = 1_000.0  # a connector draws at least this once its EV charges
STATION_USED = 0.85  # the EVs ask for more than the station has: nearly all of it ends up in use


def readings(bus: BusReader) -> dict[int, MeterReading | None]:
    return {cid: bus.get(contract.METER, meter=f"connector{cid}") for cid in CONNECTORS}


async def test_four_standards_charge_at_once_within_the_station_limit(csms: Csms, station: Station) -> None:
    for connector_id in CONNECTORS:
        await sim(station, "plug", str(connector_id), "--soc", "20")
        await status_notification(csms, connector_id, "Preparing")
        assert await csms.remote_start(CHARGE_POINT_ID, f"TAG-{connector_id}",
                                       connector_id=connector_id) == "Accepted"
    bus = BusReader()
    try:
        async def all_charging() -> dict[int, MeterReading] | None:
            now = readings(bus)
            drawing = {cid: r for cid, r in now.items() if r is not None and r.power_w >= CHARGING_W}
            return drawing if len(drawing) == len(CONNECTORS) else None
        await async_wait_until(all_charging, timeout_s=90, what="all four connectors drawing power")
        for connector_id in CONNECTORS:
            await status_notification(csms, connector_id, "Charging")

        async def modules_delivering() -> list[str] | None:
            delivering = [name for name in MODULES if (r := bus.get(contract.POWER_MODULE, module=name))
                          is not None and r.current_a > 1.0]
            return delivering if len(delivering) >= 3 else None
        assert await async_wait_until(modules_delivering, timeout_s=30, what="power modules delivering")

        async def station_used() -> float | None:
            now = readings(bus)
            total = sum(r.power_w for r in now.values() if r is not None)
            assert total <= STATION_LIMIT_W * 1.02, f"{total:.0f} W drawn, station limit {STATION_LIMIT_W} W"
            return total if total >= STATION_USED * STATION_LIMIT_W else None
        await async_wait_until(station_used, timeout_s=60, what="the station's power in use")
        grid = bus.get(contract.METER, meter="station")
        assert grid is not None and grid.power_w <= STATION_LIMIT_W * 1.02 + CABINET_W
        assert len(csms.calls("StopTransaction")) == 0, "sharing throttles; it never stops a session"
        for connector_id in CONNECTORS:
            state = bus.get(contract.CONNECTOR, connector_id=connector_id)
            assert state is not None and state.standard.value == CONNECTORS[connector_id]

        for connector_id in CONNECTORS:
            await sim(station, "unplug", str(connector_id))

        async def all_stopped() -> bool:
            return len(csms.calls("StopTransaction")) == len(CONNECTORS)
        await async_wait_until(all_stopped, timeout_s=60, what="four StopTransaction")

        async def modules_idle() -> bool:
            return all((r := bus.get(contract.POWER_MODULE, module=name)) is None or r.current_a <= 1.0
                       for name in MODULES)
        await async_wait_until(modules_idle, timeout_s=30, what="every module at zero current")
    finally:
        bus.close()
    log = station.output()
    assert "opened under" not in log, "a link was switched under load"
    assert "linked to connectors" not in log, "a module was on two connectors at once"
