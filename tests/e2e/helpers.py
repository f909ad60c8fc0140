"""Small steps the end-to-end tests share."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.support.database import query
from tests.support.station import Station
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms, ReceivedCall

CARD = "0A00B1C2D3"


async def sim(station: Station, *args: str) -> None:
    """`manage.py sim ...` without blocking the CSMS running on this loop."""
    await asyncio.to_thread(station.sim, *args)


async def status_notification(csms: Csms, connector_id: int, status: str,
                              timeout_s: float = 20.0) -> ReceivedCall:
    async def sent() -> ReceivedCall | None:
        return next((c for c in reversed(csms.calls("StatusNotification"))
                     if c.payload["connectorId"] == connector_id and c.payload["status"] == status), None)
    return await async_wait_until(sent, timeout_s=timeout_s,
                                  what=f"StatusNotification {status} for connector {connector_id}")


def energy_values(meter_values: list[ReceivedCall]) -> list[float]:
    """Energy.Active.Import.Register of each MeterValues, in Wh, in arrival order."""
    energies = []
    for received in meter_values:
        for sample in received.payload["meterValue"]:
            for value in sample["sampledValue"]:
                if value.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
                    assert value.get("unit", "Wh") == "Wh"
                    energies.append(float(value["value"]))
    return energies


def session_row(station: Station, meter_start: int) -> dict[str, Any]:
    """The ChargingSession row smartw wrote for the session that started at `meter_start`."""
    path = Path(station.database_url.removeprefix("sqlite:///"))
    # OCPP's meterStart is the register rounded to a whole Wh; the row keeps the register as read.
    rows = query(path, "SELECT * FROM station_chargingsession WHERE ABS(meter_start_wh - ?) <= 0.5",
                 meter_start)
    assert len(rows) == 1, rows
    return dict(rows[0])
