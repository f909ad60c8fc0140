"""The durable session log (ChargingSession rows) and the bus events that follow each row.

A row is written first, then its event is published, then the row is marked published. A
crash between the two leaves the mark unset, and smartw publishes the event again when it
starts (ocpp16 ignores an event it has already recorded), so no StartTransaction or
StopTransaction is ever lost to that window.
"""

from __future__ import annotations

import logging

from bus import Bus, contract
from bus.enums import StopReason
from bus.messages import SessionStarted, SessionStopped
from webapp.station.models import ChargingSession

log = logging.getLogger(__name__)


async def publish_started(bus: Bus, row: ChargingSession) -> None:
    """The row keeps the reservation the session used, so an event published again after a crash
    still names it (StartTransaction.reservationId)."""
    await bus.publish(contract.SESSIONS, SessionStarted(
        session_id=row.session_id, connector_id=row.connector_id, id_tag=row.id_tag,
        meter_start_wh=row.meter_start_wh, reservation_id=row.reservation_id, at=row.started_at,
    ))
    await ChargingSession.objects.filter(pk=row.pk).aupdate(start_published=True)


async def publish_stopped(bus: Bus, row: ChargingSession) -> None:
    assert row.stopped_at is not None and row.meter_stop_wh is not None
    await bus.publish(contract.SESSIONS, SessionStopped(
        session_id=row.session_id, connector_id=row.connector_id, id_tag=row.stop_id_tag or None,
        meter_stop_wh=row.meter_stop_wh, reason=StopReason(row.stop_reason), at=row.stopped_at,
    ))
    await ChargingSession.objects.filter(pk=row.pk).aupdate(stop_published=True)


async def store_parent(session_id: str, parent_id_tag: str) -> None:
    """Keep the idTag's group learnt after the start (StartTransaction.conf) in the session's row."""
    await ChargingSession.objects.filter(session_id=session_id).aupdate(parent_id_tag=parent_id_tag)


async def republish_unconfirmed(bus: Bus) -> int:
    """Publish again every event whose row is not marked published; returns how many."""
    count = 0
    async for row in ChargingSession.objects.filter(start_published=False).order_by("started_at"):
        await publish_started(bus, row)
        count += 1
    unsent = ChargingSession.objects.filter(stopped_at__isnull=False, stop_published=False)
    async for row in unsent.order_by("stopped_at"):
        await publish_stopped(bus, row)
        count += 1
    if count:
        log.warning("published %d session event(s) again that a crash had left unsent", count)
    return count
