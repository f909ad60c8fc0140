"""OCPP smart charging end to end: the CSMS's charging profiles reach smartw through ocpp16's
bus limits, and the meters of the simulated station show them obeyed (safety invariant 1 of
ARCHITECTURE.md: the power drawn never exceeds an active OCPP charging profile)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import pytest
from ocpp.v16 import call

from bus import contract
from bus.messages import ChargingLimit, LimitSource, MeterReading
from tests.e2e.conftest import CHARGE_POINT_ID
from tests.e2e.helpers import sim, status_notification
from tests.support.station import BusReader, Station
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CONNECTORS = (1, 2)  # CCS (150 kW) and Type 2 (22 kW): far more than the cap below
STATION_CAP_W = 20_000.0
TYPE2_TX_LIMIT_A = 10.0  # per phase, three phases: 6.9 kW
TOLERANCE = 1.03  # meter accuracy and the controllers' regulation
SETTLE_S = 30.0  # smartw ramps the DC modules down within a few control cycles
WATCH_READINGS = 10  # readings in a row that must all stay within the limit
CHARGING_W = 1_000.0  # a connector draws at least this while its EV charges


def profile(profile_id: int, purpose: str, limit: float, unit: str) -> dict[str, object]:
    start = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {"chargingProfileId": profile_id, "stackLevel": 0, "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": unit, "startSchedule": start,
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}


def readings(bus: BusReader, connector_ids: tuple[int, ...]) -> list[MeterReading]:
    return [r for c in connector_ids if (r := bus.get(contract.METER, meter=f"connector{c}")) is not None]


def total_w(bus: BusReader, connector_ids: tuple[int, ...]) -> float:
    return sum(reading.power_w for reading in readings(bus, connector_ids))


async def set_profile(csms: Csms, connector_id: int, charging_profile: dict[str, object]) -> str:
    result = await csms.send(CHARGE_POINT_ID, call.SetChargingProfile(connector_id=connector_id,
                                                                      cs_charging_profiles=charging_profile))
    return str(result.status)


async def stays_within(bus: BusReader, connector_ids: tuple[int, ...], limit_w: float, what: str) -> None:
    """Wait until the connectors' summed power is within `limit_w` (plus tolerance), then see
    it stay there for WATCH_READINGS new meter readings."""
    async def within() -> bool:
        return total_w(bus, connector_ids) <= limit_w * TOLERANCE
    await async_wait_until(within, timeout_s=SETTLE_S, what=f"{what} within {limit_w:.0f} W")
    seen_at = max(reading.at for reading in readings(bus, connector_ids))
    seen: list[float] = []
    for _ in range(WATCH_READINGS):
        fresh = await async_wait_until(functools.partial(_newer, bus, connector_ids, seen_at),
                                       what=f"{what}: a new meter reading")
        seen_at = max(reading.at for reading in fresh)
        seen.append(sum(reading.power_w for reading in fresh))
        assert seen[-1] <= limit_w * TOLERANCE, f"{what} above {limit_w:.0f} W: {seen}"


async def _newer(bus: BusReader, connector_ids: tuple[int, ...], than: datetime) -> list[MeterReading] | None:
    now = readings(bus, connector_ids)
    return now if max(reading.at for reading in now) > than else None


async def test_charge_point_max_and_tx_profiles_hold_the_measured_power(csms: Csms, station: Station) -> None:
    """TC_066_CS-style caps on a real station: a ChargePointMaxProfile of 20 kW holds the sum of
    the connectors' measured power; a TxProfile of 10 A holds the Type 2 session below it."""
    for connector_id in CONNECTORS:
        await sim(station, "plug", str(connector_id), "--soc", "20")
        await status_notification(csms, connector_id, "Preparing")
        assert await csms.remote_start(CHARGE_POINT_ID, f"TAG-{connector_id}",
                                       connector_id=connector_id) == "Accepted"
    bus = BusReader()
    try:
        async def both_charging_above_the_cap() -> bool:
            drawing = [r for r in readings(bus, CONNECTORS) if r.power_w > CHARGING_W]
            return len(drawing) == len(CONNECTORS) and total_w(bus, CONNECTORS) > STATION_CAP_W * 1.2
        await async_wait_until(both_charging_above_the_cap, timeout_s=90, what="both EVs drawing > the cap")

        cap = profile(1, "ChargePointMaxProfile", STATION_CAP_W, "W")
        assert await set_profile(csms, 0, cap) == "Accepted"
        async def station_limit() -> ChargingLimit | None:  # published after the answer, not before
            return bus.get(contract.OCPP_LIMIT, connector_id=0)
        limit = await async_wait_until(station_limit, what="the station limit on the bus")
        assert limit.source is LimitSource.OCPP_CHARGE_POINT_MAX
        await stays_within(bus, CONNECTORS, STATION_CAP_W, "the connectors' total power")
        assert all(r.power_w > CHARGING_W for r in readings(bus, CONNECTORS)), "the cap stops no session"

        assert await set_profile(csms, 2, profile(2, "TxProfile", TYPE2_TX_LIMIT_A, "A")) == "Accepted"
        await stays_within(bus, (2,), TYPE2_TX_LIMIT_A * 3 * 230.0, "the Type 2 session")
        assert total_w(bus, CONNECTORS) <= STATION_CAP_W * TOLERANCE
        assert len(csms.calls("StopTransaction")) == 0
    finally:
        bus.close()
