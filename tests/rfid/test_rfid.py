"""`python -m workers.rfid` against `python -m workers.sim`, for each reader station.toml can
name: a card swiped (held, then taken away) is one CARDS entry; the reader's state on the bus."""

from __future__ import annotations

import re
from pathlib import Path

import redis

from bus import Bus, contract
from bus.messages import SimAction
from tests.rfid.readers import cards, reader_is
from tests.sim.processes import (
    ServiceProcess,
    StationFiles,
    service_env,
    wait_sim_ready,
    write_station_toml,
)
from tests.support.waiting import async_wait_until


async def swipe(bus: Bus, uid: str) -> None:
    assert (await bus.request(contract.SIM, SimAction(action="swipe", uid=uid))).accepted


async def test_em4100_cards_from_the_reader_are_published_once_per_hold(
        bus: Bus, redis_client: redis.Redis, tmp_path: Path) -> None:
    files = write_station_toml(tmp_path)
    env = service_env(files)
    rfid = ServiceProcess("workers.rfid", env, tmp_path / "rfid.log")  # before the reader exists
    sim = ServiceProcess("workers.sim", env, tmp_path / "sim.log")
    try:
        wait_sim_ready(redis_client, sim, files)
        await async_wait_until(lambda: _opened(rfid), what="rfid to open the reader once it exists")

        await swipe(bus, "0a00b1c2d3")  # frames repeat while the card is held
        await swipe(bus, "0A00B1C2D3")  # swiped again while still held: the same hold
        await swipe(bus, "1122334455")
        await async_wait_until(lambda: _count(bus, 2), what="two presentations")
        assert await cards(bus) == ["0A00B1C2D3", "1122334455"]
        assert await reader_is(bus, True)

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


async def test_pn532_cards_are_published_once_per_hold(
        bus: Bus, redis_client: redis.Redis, tmp_path: Path) -> None:
    files = _with_pn532(write_station_toml(tmp_path))
    env = service_env(files)
    sim = ServiceProcess("workers.sim", env, tmp_path / "sim.log")
    rfid = ServiceProcess("workers.rfid", env, tmp_path / "rfid.log")
    try:
        wait_sim_ready(redis_client, sim, files)
        await async_wait_until(lambda: reader_is(bus, True), what="the PN532 to answer")
        assert "PN532 firmware 1.6" in rfid.output()

        await swipe(bus, "deadbeef")
        await swipe(bus, "DEADBEEF")  # still held: the same hold
        await async_wait_until(lambda: _count(bus, 1), what="a poll to find the card")
        await swipe(bus, "04A1B2C3D4E5F6")
        await async_wait_until(lambda: _count(bus, 2), what="two presentations")
        assert await cards(bus) == ["DEADBEEF", "04A1B2C3D4E5F6"]
        assert not (await bus.request(contract.SIM, SimAction(action="swipe", uid="0A00B1C2D3"))).accepted, \
            "a PN532 reads ISO 14443 UIDs (4, 7 or 10 bytes), not EM4100 ids"
    finally:
        assert sim.stop() == 0
        assert rfid.stop() == 0, rfid.output()


def _with_pn532(files: StationFiles) -> StationFiles:
    """The test station.toml with a PN532 (poll every 0.1 s) in place of the EM4100 reader."""
    text = files.config.read_text(encoding="utf-8")
    section = f'[rfid]\ndriver = "pn532"\nport = "{files.rfid_link}"\npoll_s = 0.1\n\n'
    text, replaced = re.subn(r"\[rfid\]\n.*?\n\n", section, text, count=1, flags=re.DOTALL)
    assert replaced == 1, "ops/station.sim.toml has no [rfid] section followed by a blank line"
    files.config.write_text(text, encoding="utf-8")
    return files


async def _opened(rfid: ServiceProcess) -> bool:
    return "open at 9600 baud" in rfid.output()


async def _reopened(rfid: ServiceProcess) -> bool:
    return rfid.output().count("open at 9600 baud") >= 2


async def _count(bus: Bus, n: int) -> bool:
    return len(await cards(bus)) >= n
