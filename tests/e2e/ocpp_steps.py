"""Steps the OCPP end-to-end cases share (tests/e2e/test_ocpp_*.py): what the CSMS saw after a
point in time, a configuration change, and a session started the way OCTT's reusable state
"Charging" does it (plug-in first, then the card)."""

from __future__ import annotations

from ocpp.v16 import call

from tests.e2e.conftest import CHARGE_POINT_ID
from tests.e2e.helpers import sim
from tests.support.station import Station
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms, ReceivedCall


def mark(csms: Csms) -> int:
    return len(csms.received)


async def call_after(csms: Csms, since: int, action: str, timeout_s: float = 30.0,
                     **payload: object) -> ReceivedCall:
    """The first `action` CALL after `since` (a `mark`) whose payload holds `payload`."""
    async def sent() -> ReceivedCall | None:
        return next((c for c in csms.received[since:] if c.action == action
                     and all(c.payload.get(k) == v for k, v in payload.items())), None)
    return await async_wait_until(sent, timeout_s=timeout_s, what=f"{action} {payload} after call #{since}")


def calls_after(csms: Csms, since: int, action: str, **payload: object) -> list[ReceivedCall]:
    return [c for c in csms.received[since:] if c.action == action
            and all(c.payload.get(k) == v for k, v in payload.items())]


async def configure(csms: Csms, key: str, value: str) -> None:
    result = await csms.send(CHARGE_POINT_ID, call.ChangeConfiguration(key=key, value=value))
    assert str(result.status) == "Accepted", (key, value)


async def plug_and_swipe(csms: Csms, station: Station, connector_id: int, card: str) -> ReceivedCall:
    """OCTT TC_003_CS: plug-in first (Preparing), then the card: Authorize, StartTransaction, Charging."""
    since = mark(csms)
    await sim(station, "plug", str(connector_id))
    await call_after(csms, since, "StatusNotification", connectorId=connector_id, status="Preparing")
    await sim(station, "swipe", card)
    await call_after(csms, since, "Authorize", idTag=card)
    start = await call_after(csms, since, "StartTransaction", connectorId=connector_id, idTag=card)
    await call_after(csms, since, "StatusNotification", connectorId=connector_id, status="Charging")
    return start
