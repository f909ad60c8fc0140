"""`python -m workers.rfid` against the simulated reader: one CARDS entry per presentation."""

from __future__ import annotations

from pathlib import Path

import redis

from bus import Bus, contract
from bus.messages import SimAction
from tests.sim.processes import ServiceProcess, service_env, wait_sim_ready, write_station_toml
from tests.support.waiting import async_wait_until
from workers.rfid.service import RepeatFilter


def test_repeats_within_the_window_are_one_presentation() -> None:
    repeats = RepeatFilter(window_s=2.0)
    assert repeats.is_new("AA", 0.0)
    assert not repeats.is_new("AA", 0.1)
    assert not repeats.is_new("AA", 2.0)  # held: each repeat extends the window
    assert repeats.is_new("BB", 2.1)  # another card
    assert repeats.is_new("AA", 2.2)
    assert repeats.is_new("AA", 4.3)  # taken away for more than 2 s, presented again


async def cards(bus: Bus) -> list[str]:
    _, deliveries = await bus.tail(contract.CARDS, "0", block_ms=1)
    return [delivery.message.uid for delivery in deliveries]


async def swipe(bus: Bus, uid: str) -> None:
    assert (await bus.request(contract.SIM, SimAction(action="swipe", uid=uid))).accepted


async def test_cards_from_the_reader_are_published_once_per_presentation(
        bus: Bus, redis_client: redis.Redis, tmp_path: Path) -> None:
    files = write_station_toml(tmp_path)
    env = service_env(files)
    rfid = ServiceProcess("workers.rfid", env, tmp_path / "rfid.log")  # before the reader exists
    sim = ServiceProcess("workers.sim", env, tmp_path / "sim.log")
    try:
        wait_sim_ready(redis_client, sim, files)
        await async_wait_until(lambda: _opened(rfid), what="rfid to open the reader once it exists")

        await swipe(bus, "0a00b1c2d3")  # three frames on the wire
        await swipe(bus, "0A00B1C2D3")  # still held: a repeat
        await swipe(bus, "1122334455")
        await async_wait_until(lambda: _count(bus, 2), what="two presentations")
        assert await cards(bus) == ["0A00B1C2D3", "1122334455"]

        assert sim.stop() == 0  # the reader goes away, then comes back
        sim = ServiceProcess("workers.sim", env, tmp_path / "sim2.log")
        wait_sim_ready(redis_client, sim, files)
        await async_wait_until(lambda: _reopened(rfid), what="rfid to reopen the reader")
        await swipe(bus, "0A00B1C2D3")
        await async_wait_until(lambda: _count(bus, 3), what="the card after the reader came back")
        assert "beeps by itself" in rfid.output()
    finally:
        assert sim.stop() == 0
        assert rfid.stop() == 0, rfid.output()


async def _opened(rfid: ServiceProcess) -> bool:
    return "open at 9600 baud" in rfid.output()


async def _reopened(rfid: ServiceProcess) -> bool:
    return rfid.output().count("open at 9600 baud") >= 2


async def _count(bus: Bus, n: int) -> bool:
    return len(await cards(bus)) >= n
