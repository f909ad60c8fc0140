"""The `rfid` service: the card reader named by station.toml -> contract.CARDS, one per hold.

Provides: stream contract.CARDS (CardPresented, one entry per hold of a card on the reader);
key contract.DEVICE "rfid" (the reader's availability).
Requires: station.toml `[rfid]`: driver ("em4100" | "pn532"), port, baudrate; for a PN532
also poll_s, beep_pin, beep_ms.

A card held on the reader is published once and again only after it left: a PN532 stops
listing it (InRelease puts it to standby after the read), an EM4100 reader stops repeating it
for longer than `REPEAT_WINDOW_S`. A reader that can beep (a buzzer on a PN532 GPIO) beeps on
each published read; an EM4100 reader beeps by itself. A port that is missing or goes away
(the simulator restarting, a USB adapter unplugged) is reopened with backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from bus import Service
from workers.common.station_config import RfidConfig, load_from_settings
from workers.drivers import em4100
from workers.rfid.em4100_reader import Em4100Reader
from workers.rfid.holds import HoldTracker
from workers.rfid.pn532_reader import Pn532Reader
from workers.rfid.report import ReaderReport

REPEAT_WINDOW_S = 5 * em4100.REPEAT_PERIOD_S  # EM4100: a silence this long ends a hold


class CardReader(Protocol):
    async def run(self) -> None:
        """Read cards into the report until `stopping` is set."""
        ...


ReaderFactory = Callable[[RfidConfig, ReaderReport, asyncio.Event], CardReader]

# driver name -> (reader loop, silence that ends a hold; None: the reader says when)
READERS: dict[str, tuple[ReaderFactory, float | None]] = {
    "em4100": (Em4100Reader, REPEAT_WINDOW_S),
    "pn532": (Pn532Reader, None),
}


class RfidService(Service):
    name = "rfid"

    async def run(self) -> None:
        config = load_from_settings().rfid
        reader, hold_gap_s = READERS[config.driver]
        report = ReaderReport(self.bus, HoldTracker(hold_gap_s))
        await reader(config, report, self.stopping).run()
