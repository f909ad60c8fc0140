"""`python -m workers.counters` against the simulator: METER keys appear, follow the meter,
and go stale when the meter stops answering."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bus import Bus, contract
from bus.messages import MeterReading, SimAction
from tests.sim.module_feed import module_feed
from tests.sim.processes import ServiceProcess, SimStation, service_env, wait_sim_ready
from tests.support.hardware import io_keepalive, load_config, sync_tool_wire
from tests.support.waiting import async_wait_until, wait_until
from workers.common.power_config import link_key

MODULE_V, MODULE_A = 410.0, 100.0  # at the simulated pack's maximum; two modules cover 40 kW


@pytest.fixture
def counters(sim_station: SimStation, tmp_path: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess("workers.counters", sim_station.env, tmp_path / "counters.log")
    try:
        yield process
    finally:
        code = process.stop()
    assert code == 0, process.output()


async def reading(bus: Bus, connector_id: int) -> MeterReading | None:
    return await bus.get(contract.METER, meter=f"connector{connector_id}")


async def test_every_connector_meter_is_published_and_follows_charging(
        bus: Bus, sim_station: SimStation, counters: ServiceProcess) -> None:
    first = await async_wait_until(lambda: reading(bus, 1), what="connector1 reading")
    second = await async_wait_until(lambda: reading(bus, 2), what="connector2 reading")
    assert (first.meter, first.power_w, first.voltage_v) == ("connector1", 0.0, 0.0)  # DC, no EV
    assert second.voltage_v == pytest.approx(230.0)  # AC meter sees the grid
    assert await bus.redis.pttl(bus.names.key(contract.METER.format(meter="connector1"))) <= 600

    assert (await bus.request(contract.SIM, SimAction(action="plug", connector_id=1))).accepted
    config = load_config(sim_station.files.config)
    assert config.power_modules is not None
    async with module_feed(config.power_modules, bus) as modules, io_keepalive(config):  # two modules feed it
        await modules.switch_on(("pm1", "pm2"), voltage_v=MODULE_V, current_a=MODULE_A)
        with sync_tool_wire(config) as client:
            client.write_coil(0, True, device_id=10)  # connector 1's contactor
            links = {link.key: link.coil for link in config.power_modules.links}
            for module in ("pm1", "pm2"):
                client.write_coil(links[link_key(module, 1)], True, device_id=10)
            client.write_registers(0, [1, 400], device_id=21)  # enable, 40 kW
        await _charges_at_40_kw(bus, first)


async def _charges_at_40_kw(bus: Bus, first: MeterReading) -> None:
    async def charging() -> MeterReading | None:
        now = await reading(bus, 1)
        growing = now is not None and now.energy_wh > first.energy_wh
        return now if growing and now.power_w == pytest.approx(40_000) else None

    now = await async_wait_until(charging, timeout_s=20, what="40 kW and growing energy on connector1")
    assert now.voltage_v and now.current_a == pytest.approx(40_000 / now.voltage_v, rel=1e-3)


async def test_a_meter_that_stops_answering_goes_stale_and_is_logged_once(
        bus: Bus, redis_client, sim_station: SimStation, counters: ServiceProcess, tmp_path: Path) -> None:
    await async_wait_until(lambda: reading(bus, 1), what="connector1 reading")
    assert sim_station.process.stop() == 0

    async def gone() -> bool:
        return await reading(bus, 1) is None and await reading(bus, 2) is None

    await async_wait_until(gone, timeout_s=5, what="readings to expire")
    wait_until(lambda: counters.output().count("stopped answering") >= 2, what="the outage logged")
    log = counters.output()
    assert log.count("meter connector1 stopped answering") == 1, log
    state = await async_wait_until(lambda: _unavailable(bus, "meter:connector1"), timeout_s=5,
                                   what="meter:connector1 marked unavailable")
    assert state.bus == "rs485_meters" and state.reason
    _, deliveries = await bus.tail(contract.DEVICE_CHANGES, "0-0")
    changes = [delivery.message for delivery in deliveries]
    assert [(c.device, c.available) for c in changes if c.device == "meter:connector1"][-2:] == [
        ("meter:connector1", True), ("meter:connector1", False)]

    restarted = ServiceProcess("workers.sim", service_env(sim_station.files), tmp_path / "sim2.log")
    try:
        wait_sim_ready(redis_client, restarted, sim_station.files)
        await async_wait_until(lambda: reading(bus, 1), what="connector1 reading after the sim is back")
        assert "meter connector1 answers again" in counters.output()
        state = await bus.get(contract.DEVICE, device="meter:connector1")
        assert state is not None and state.available
        assert counters.output().count("meter connector1 stopped answering") == 1
    finally:
        assert restarted.stop() == 0



async def _unavailable(bus: Bus, device: str):
    state = await bus.get(contract.DEVICE, device=device)
    return state if state is not None and not state.available else None
