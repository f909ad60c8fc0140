"""The EM4100 reader loop against the simulated RDM6300-class reader over a real pty: a held
card (a stream of repeated frames) is one read, line faults, a silent or vanished reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus import Bus
from tests.rfid.readers import cards, reader_is, reader_state, running_reader
from tests.support.waiting import async_wait_until
from workers.common.station_config import RfidConfig
from workers.rfid.service import REPEAT_WINDOW_S
from workers.sim.rfid_port import SimulatedReader

CARD = "0A00B1C2D3"
OTHER = "1122334455"


@pytest.fixture
async def em4100(tmp_path: Path) -> AsyncIterator[SimulatedReader]:
    reader = SimulatedReader(tmp_path / "ttyRFID")
    reader.open()
    try:
        yield reader
    finally:
        reader.close()


def config_for(reader: SimulatedReader) -> RfidConfig:
    return RfidConfig(driver="em4100", port=str(reader.link))


async def published(bus: Bus, expected: list[str]) -> None:
    async def probe() -> bool:
        return await cards(bus) == expected
    await async_wait_until(probe, what=f"cards {expected}; got {await cards(bus)}")


async def frames_sent(reader: SimulatedReader, count: int) -> None:
    async def probe() -> bool:
        return reader.frames_sent >= count
    await async_wait_until(probe, what=f"{count} frames on the wire")


async def left_the_field(reader: SimulatedReader) -> None:
    async def probe() -> bool:
        return reader.card is None
    await async_wait_until(probe, what="the card to leave the reader")
    await asyncio.sleep(REPEAT_WINDOW_S)  # the card stays away longer than a hold's gap


async def test_a_held_card_is_one_read_and_a_second_hold_is_another(bus: Bus, em4100) -> None:
    async with running_reader(config_for(em4100), bus):
        await async_wait_until(lambda: reader_is(bus, True), what="the port to open")
        em4100.present(CARD, hold_s=0.8)
        await frames_sent(em4100, 5)
        await left_the_field(em4100)
        assert await cards(bus) == [CARD], "five frames of one hold are one read"

        em4100.present(CARD, hold_s=0.2)
        await published(bus, [CARD, CARD])


async def test_the_same_card_presented_again_while_held_stays_one_read(bus: Bus, em4100) -> None:
    async with running_reader(config_for(em4100), bus):
        em4100.present(CARD, hold_s=1.0)
        await published(bus, [CARD])
        sent = em4100.frames_sent
        em4100.present(CARD, hold_s=1.0)  # `sim swipe` twice: the hold goes on
        await frames_sent(em4100, sent + 3)
        em4100.present(OTHER, hold_s=0.3)  # another card replaces it at once
        await published(bus, [CARD, OTHER])


async def test_line_noise_around_frames_does_not_stop_the_read(bus: Bus, em4100) -> None:
    em4100.inject_fault("garbage")
    async with running_reader(config_for(em4100), bus):
        em4100.present(CARD, hold_s=0.3)
        await published(bus, [CARD])


async def test_frames_with_a_bad_checksum_are_never_published(bus: Bus, em4100) -> None:
    em4100.inject_fault("bad_checksum")
    async with running_reader(config_for(em4100), bus):
        em4100.present(CARD, hold_s=None)
        await frames_sent(em4100, 4)
        await asyncio.sleep(0.1)  # the last frame is read too
        assert await cards(bus) == []
        em4100.clear_faults()
        await published(bus, [CARD])  # the first good frame of the hold


async def test_an_offline_reader_sends_nothing_but_its_port_stays_available(bus: Bus, em4100) -> None:
    em4100.set_online(False)
    async with running_reader(config_for(em4100), bus):
        await async_wait_until(lambda: reader_is(bus, True), what="the port to open")
        em4100.present(CARD, hold_s=None)
        await asyncio.sleep(0.3)
        assert (em4100.frames_sent, await cards(bus)) == (0, [])
        em4100.set_online(True)
        await published(bus, [CARD])
    state = await reader_state(bus)
    assert state is not None and state.available, "an EM4100 reader is available while its port is"


async def test_a_vanished_reader_is_unavailable_until_its_port_is_back(bus: Bus, em4100, tmp_path) -> None:
    async with running_reader(config_for(em4100), bus):
        await async_wait_until(lambda: reader_is(bus, True), what="the port to open")
        em4100.close()
        await async_wait_until(lambda: reader_is(bus, False), what="the reader to be unavailable")
        state = await reader_state(bus)
        assert state is not None and str(em4100.link) in state.reason

        em4100.open()
        await async_wait_until(lambda: reader_is(bus, True), timeout_s=15, what="the reader back")
        em4100.present(CARD, hold_s=0.3)
        await published(bus, [CARD])
