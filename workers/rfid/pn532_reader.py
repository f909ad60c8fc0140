"""The PN532 reader loop: wake and identify the reader, poll for a card, release it, beep.

Every `poll_s` one InListPassiveTarget: no card reports an empty field; a card is reported
(published once per hold), sent to standby with InRelease (so it is not listed again while it
stays on the reader), and a published read pulses the buzzer GPIO. The reader is "available"
while it answers: an unanswered or garbled command is reported as a failed poll (two in a row
make it unavailable), logged at ERROR once and at DEBUG until it answers again, and the next
cycle wakes and configures it again (it may have been power-cycled). A lost port is reopened.
"""

from __future__ import annotations

import asyncio
import logging

from workers.common.station_config import RfidConfig
from workers.drivers.errors import DeviceError
from workers.drivers.pn532 import Pn532, Pn532Error, Pn532Port
from workers.rfid.report import ReaderReport, open_port, pause

log = logging.getLogger(__name__)


class Pn532Reader:
    def __init__(self, config: RfidConfig, report: ReaderReport, stopping: asyncio.Event) -> None:
        self.port = Pn532Port(config.port, config.baudrate)
        self.driver = Pn532(self.port)
        self.report = report
        self.stopping = stopping
        self.poll_s = config.poll_s
        self.beep_pin = config.beep_pin
        self.beep_s = config.beep_ms / 1000  # 0: no buzzer wired
        self._failing = False

    async def run(self) -> None:
        try:
            while not self.stopping.is_set() and await open_port(self.port, self.report, self.stopping):
                await self._poll_until_lost()
        finally:
            self.port.close()

    async def _poll_until_lost(self) -> None:
        ready = False
        while not self.stopping.is_set():
            try:
                if not ready:
                    log.info("card reader on %s: %s", self.port.path, await self.driver.initialise())
                    ready = True
                await self._poll()
            except Pn532Error as error:
                ready = False
                await self._failed(error)
            except DeviceError as error:
                log.error("card reader lost: %s; reopening", error)
                await self.report.not_answering(error.reason)
                self.port.close()
                return
            else:
                await self._answered()
            if not await pause(self.stopping, self.poll_s):
                return

    async def _poll(self) -> None:
        target = await self.driver.list_target()
        if target is None:
            self.report.field_empty()
            return
        published = await self.report.card(target.id_tag)
        await self.driver.release(target)
        if published and self.beep_s:
            await self.driver.pulse_gpio(self.beep_pin, self.beep_s)

    async def _failed(self, error: Pn532Error) -> None:
        (log.debug if self._failing else log.error)("card reader: %s", error)
        self._failing = True
        await self.report.not_answering(error.reason)

    async def _answered(self) -> None:
        if self._failing:
            log.info("card reader on %s answers again", self.port.path)
        self._failing = False
        await self.report.answering()
