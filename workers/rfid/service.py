"""The `rfid` service: EM4100 frames from the reader's serial port -> contract.CARDS.

Provides: stream contract.CARDS (CardPresented, one entry per presentation).
Requires: station.toml `[rfid]` (driver, port, baudrate).

A reader repeats its frame while a card is held; repeats of the same card within
`REPEAT_WINDOW_S` of the last read are one presentation. A port that is missing or goes
away (the simulator restarting, a USB adapter unplugged) is reopened with backoff.
Beep: EM4100 readers take no commands and beep by themselves on a read, so the service
only logs that the reader beeped (`em4100.CAN_BEEP` is False); it fakes no beep command.
"""

from __future__ import annotations

import asyncio
import logging
import time

from bus import Service, contract
from bus.messages import CardPresented
from workers.common.station_config import load_from_settings
from workers.drivers import em4100
from workers.drivers.errors import DeviceError
from workers.drivers.serial_port import SerialPort

log = logging.getLogger(__name__)

REPEAT_WINDOW_S = 2.0
STOP_CHECK_S = 0.5  # longest wait for bytes before the stop flag is checked again


class RepeatFilter:
    """True for a card's first read; False for its repeats until it is away for `window_s`."""

    def __init__(self, window_s: float = REPEAT_WINDOW_S) -> None:
        self.window_s = window_s
        self._last_uid: str | None = None
        self._last_seen = 0.0

    def is_new(self, uid: str, now: float) -> bool:
        new = uid != self._last_uid or now - self._last_seen > self.window_s
        self._last_uid, self._last_seen = uid, now
        return new


class RfidService(Service):
    name = "rfid"

    async def run(self) -> None:
        config = load_from_settings().rfid
        port = SerialPort(config.port, config.baudrate)
        parser = em4100.Em4100Parser(source=config.port)
        repeats = RepeatFilter()
        try:
            while not self.stopping.is_set() and await port.open_with_backoff(self.sleep):
                await self._read_until_lost(port, parser, repeats)
        finally:
            port.close()

    async def _read_until_lost(self, port: SerialPort, parser: em4100.Em4100Parser,
                               repeats: RepeatFilter) -> None:
        while not self.stopping.is_set():
            try:
                data = await asyncio.wait_for(port.read(), timeout=STOP_CHECK_S)
            except TimeoutError:
                continue  # nothing read; look at the stop flag again
            except DeviceError as error:
                log.error("card reader lost: %s; reopening", error)
                port.close()
                return
            for uid in parser.feed(data):
                if repeats.is_new(uid, time.monotonic()):
                    await self._publish(uid)

    async def _publish(self, uid: str) -> None:
        await self.bus.publish(contract.CARDS, CardPresented(uid=uid))
        beep = "" if em4100.CAN_BEEP else " (the EM4100 reader beeps by itself; it takes no beep command)"
        log.info("card %s presented%s", uid, beep)
