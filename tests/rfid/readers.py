"""Run a reader loop of the rfid service in-process against a simulated reader on a real pty,
publishing on the test bus; read back what it published."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bus import Bus, contract
from bus.messages import DeviceState
from workers.common.station_config import RfidConfig
from workers.rfid.holds import HoldTracker
from workers.rfid.report import ReaderReport
from workers.rfid.service import READERS

STOP_TIMEOUT_S = 5.0


@asynccontextmanager
async def running_reader(config: RfidConfig, bus: Bus) -> AsyncIterator[None]:
    """The reader loop the service would pick for `config`, until the block ends."""
    reader, hold_gap_s = READERS[config.driver]
    stopping = asyncio.Event()
    task = asyncio.create_task(reader(config, ReaderReport(bus, HoldTracker(hold_gap_s)), stopping).run())
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, STOP_TIMEOUT_S)


async def cards(bus: Bus) -> list[str]:
    _, deliveries = await bus.tail(contract.CARDS, "0", block_ms=1)
    return [delivery.message.uid for delivery in deliveries]


async def reader_state(bus: Bus) -> DeviceState | None:
    return await bus.get(contract.DEVICE, device="rfid")


async def reader_is(bus: Bus, available: bool) -> bool:
    state = await reader_state(bus)
    return state is not None and state.available is available
