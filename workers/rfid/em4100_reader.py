"""The EM4100 reader loop: frames from the serial port -> cards, one per hold.

The reader only transmits, so "available" means its port is open (a missing or lost port is
reported, then reopened with backoff). It beeps by itself on every read and takes no command,
so the loop only logs that; it fakes no beep.
"""

from __future__ import annotations

import asyncio
import logging

from workers.common.station_config import RfidConfig
from workers.drivers import em4100
from workers.drivers.errors import DeviceError
from workers.drivers.serial_port import SerialPort
from workers.rfid.report import ReaderReport, open_port

log = logging.getLogger(__name__)

STOP_CHECK_S = 0.5  # longest wait for bytes before the stop flag is checked again


class Em4100Reader:
    def __init__(self, config: RfidConfig, report: ReaderReport, stopping: asyncio.Event) -> None:
        self.port = SerialPort(config.port, config.baudrate)
        self.parser = em4100.Em4100Parser(source=config.port)
        self.report = report
        self.stopping = stopping

    async def run(self) -> None:
        try:
            while not self.stopping.is_set() and await open_port(self.port, self.report, self.stopping):
                await self.report.answering()
                await self._read_until_lost()
        finally:
            self.port.close()

    async def _read_until_lost(self) -> None:
        while not self.stopping.is_set():
            try:
                data = await asyncio.wait_for(self.port.read(), timeout=STOP_CHECK_S)
            except TimeoutError:
                continue  # nothing read; look at the stop flag again
            except DeviceError as error:
                log.error("card reader lost: %s; reopening", error)
                await self.report.not_answering(error.reason)
                self.port.close()
                return
            for uid in self.parser.feed(data):
                if await self.report.card(uid):  # em4100.CAN_BEEP is False
                    log.info("the EM4100 reader beeps by itself; it takes no beep command")
