"""The PN532 reader loop against the simulated PN532 over a real pty: wake-up and identify,
one read per hold through InRelease (standby), the beep on a GPIO, line faults, a silent
reader and its recovery, and the reader's state on the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus import Bus
from tests.rfid.readers import cards, reader_is, reader_state, running_reader
from tests.support.waiting import async_wait_until
from workers.common.station_config import RfidConfig
from workers.drivers.pn532 import Command
from workers.sim.pn532_port import SimulatedPn532

CARD = "DEADBEEF"
NTAG = "04A1B2C3D4E5F6"
BEEP_MS = 30
INIT = [Command.SAM_CONFIGURATION, Command.RF_CONFIGURATION, Command.GET_FIRMWARE_VERSION]


@pytest.fixture
async def pn532(tmp_path: Path) -> AsyncIterator[SimulatedPn532]:
    reader = SimulatedPn532(tmp_path / "ttyRFID")
    reader.open()
    try:
        yield reader
    finally:
        reader.close()


def config_for(reader: SimulatedPn532, **settings) -> RfidConfig:
    return RfidConfig(**{"driver": "pn532", "port": str(reader.link), "poll_s": 0.05,
                         "beep_ms": BEEP_MS, **settings})


async def published(bus: Bus, expected: list[str]) -> None:
    async def probe() -> bool:
        return await cards(bus) == expected
    await async_wait_until(probe, what=f"cards {expected}")


async def polls_after(reader: SimulatedPn532, count: int) -> None:
    """Wait until the driver has polled `count` more times."""
    def polls() -> int:
        return reader.commands.count(Command.IN_LIST_PASSIVE_TARGET)
    target = polls() + count

    async def probe() -> bool:
        return polls() >= target
    await async_wait_until(probe, what=f"{count} more polls")


async def test_the_reader_is_woken_identified_and_then_polled(bus: Bus, pn532) -> None:
    async with running_reader(config_for(pn532), bus):
        await async_wait_until(lambda: reader_is(bus, True), what="the reader to answer")
        await polls_after(pn532, 2)
    commands = list(pn532.commands)
    assert commands[:3] == INIT
    assert set(commands[3:]) == {Command.IN_LIST_PASSIVE_TARGET}, "no card: only polls"


async def test_a_held_card_is_read_once_released_to_standby_and_beeped(bus: Bus, pn532) -> None:
    async with running_reader(config_for(pn532), bus):
        pn532.present(CARD, hold_s=None)
        await published(bus, [CARD])
        await async_wait_until(lambda: _true(pn532.in_standby), what="InRelease: card in standby")
        await polls_after(pn532, 5)  # held all along, polled again and again
        assert await cards(bus) == [CARD]
        assert Command.IN_RELEASE in pn532.commands
        assert [beep.pin for beep in pn532.beeps] == [30]
        assert pn532.beeps[0].duration_s >= BEEP_MS / 1000

        pn532.remove()
        await polls_after(pn532, 1)
        pn532.present(CARD, hold_s=None)  # a second hold
        await published(bus, [CARD, CARD])
        await async_wait_until(lambda: _true(len(pn532.beeps) == 2), what="a second beep")


async def test_a_seven_byte_uid_is_its_hex_id_tag_and_the_beep_pin_is_configurable(
        bus: Bus, pn532) -> None:
    async with running_reader(config_for(pn532, beep_pin=72), bus):
        pn532.present(NTAG, hold_s=0.5)
        await published(bus, [NTAG])
        await async_wait_until(lambda: _true(pn532.beeps), what="the beep")
    assert [beep.pin for beep in pn532.beeps] == [72]


async def test_no_buzzer_means_no_gpio_writes(bus: Bus, pn532) -> None:
    async with running_reader(config_for(pn532, beep_ms=0), bus):
        pn532.present(CARD, hold_s=None)
        await published(bus, [CARD])
        await polls_after(pn532, 2)
    assert Command.WRITE_GPIO not in pn532.commands and pn532.beeps == []


async def test_line_noise_before_answers_does_not_stop_the_read(bus: Bus, pn532) -> None:
    pn532.inject_fault("garbage")
    async with running_reader(config_for(pn532), bus):
        pn532.present(CARD, hold_s=None)
        await published(bus, [CARD])
        await async_wait_until(lambda: reader_is(bus, True), what="the reader available")


@pytest.mark.parametrize("fault", ["bad_checksum", "no_ack"])
async def test_a_reader_that_garbles_its_answers_is_unavailable_until_it_recovers(
        bus: Bus, pn532, fault: str) -> None:
    pn532.inject_fault(fault)
    async with running_reader(config_for(pn532), bus):
        pn532.present(CARD, hold_s=None)
        await async_wait_until(lambda: reader_is(bus, False), what="the reader to be unavailable")
        assert await cards(bus) == []
        pn532.clear_faults()
        await async_wait_until(lambda: reader_is(bus, True), what="the reader back")
        await published(bus, [CARD])


async def test_a_silent_reader_is_unavailable_and_woken_again_when_it_is_back(bus: Bus, pn532) -> None:
    async with running_reader(config_for(pn532), bus):
        await async_wait_until(lambda: reader_is(bus, True), what="the reader to answer")
        pn532.set_online(False)
        await async_wait_until(lambda: reader_is(bus, False), what="the reader to be unavailable")
        state = await reader_state(bus)
        assert state is not None and "no ACK" in state.reason

        answered = len(pn532.commands)
        pn532.set_online(True)  # powered up again: asleep until woken
        await async_wait_until(lambda: reader_is(bus, True), what="the reader back")
        assert list(pn532.commands)[answered:answered + 3] == INIT
        pn532.present(CARD, hold_s=None)
        await published(bus, [CARD])


async def test_a_vanished_reader_is_unavailable_until_its_port_is_back(bus: Bus, pn532) -> None:
    async with running_reader(config_for(pn532), bus):
        await async_wait_until(lambda: reader_is(bus, True), what="the reader to answer")
        pn532.close()  # the USB adapter unplugged
        await async_wait_until(lambda: reader_is(bus, False), what="the reader to be unavailable")
        pn532.open()
        await async_wait_until(lambda: reader_is(bus, True), timeout_s=15, what="the reader back")
        pn532.present(CARD, hold_s=None)
        await published(bus, [CARD])



@pytest.mark.parametrize("uid", ["0A00B1C2D3", "DEADBEE", "DEADBEEG", ""])
def test_the_simulated_pn532_takes_only_iso14443_uids(pn532, uid: str) -> None:
    with pytest.raises(ValueError, match="an ISO 14443 UID is 8, 14, 20 hex digits"):
        pn532.present(uid)


async def _true(value: object) -> bool:
    return bool(value)
