"""What a reader loop tells the station: cards (one per hold) and whether the reader answers.

Both reader loops (EM4100, PN532) report through a `ReaderReport`, so publishing the card
(contract.CARDS, unchanged CardPresented), one-read-per-hold filtering and the reader's
availability (contract.DEVICE "rfid" via DeviceStatusPublisher) are written once. The helpers
below open a serial port with backoff while reporting each failed attempt, and pause in a way
a stop request cuts short.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bus import Bus, contract
from bus.messages import CardPresented
from workers.common.device_status import DeviceStatusPublisher
from workers.drivers.serial_port import SerialPort
from workers.rfid.holds import HoldTracker

log = logging.getLogger(__name__)

DEVICE = "rfid"


class ReaderReport:
    def __init__(self, bus: Bus, holds: HoldTracker, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._bus = bus
        self._holds = holds
        self._clock = clock
        self._devices = DeviceStatusPublisher(bus)

    async def card(self, uid: str) -> bool:
        """The reader read `uid`; publish it if that is a new hold. True if published."""
        if not self._holds.seen(uid, self._clock()):
            return False
        await self._bus.publish(contract.CARDS, CardPresented(uid=uid))
        log.info("card %s presented", uid)
        return True

    def field_empty(self) -> None:
        self._holds.field_empty()

    async def answering(self) -> None:
        await self._devices.succeeded(DEVICE)

    async def not_answering(self, reason: str) -> None:
        await self._devices.failed(DEVICE, reason)


async def pause(stopping: asyncio.Event, seconds: float) -> bool:
    """Sleep, waking early on a stop request; True if the loop should go on."""
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    except TimeoutError:
        return True
    return False


async def open_port(port: SerialPort, report: ReaderReport, stopping: asyncio.Event) -> bool:
    """Open `port`, retrying with backoff and reporting each failure; False when stopping."""
    async def report_and_wait(delay_s: float) -> bool:
        await report.not_answering(f"cannot open {port.path}")
        return await pause(stopping, delay_s)

    return await port.open_with_backoff(report_and_wait)
