"""The present composite limits on the bus: contract.OCPP_LIMIT per connector and for the
station, the keys smartw obeys (workers/smartw/limits.py). Runs online and offline alike
(OCPP 1.6 §3.13.6).

What goes in each key: connector N gets its composite (ChargePointMaxProfile and its
Tx/TxDefault profile, the lower, counted with N's phases so a per-phase current stays per
phase); 0 gets the ChargePointMaxProfile alone, the cap on the whole station's draw that
smartw shares out. No limit: the key is deleted.

Never late with a lower limit, never a gap: a key written at t holds the LOWEST limit of the
next `LEAD_S` seconds and expires (Redis TTL = ChargingLimit.expires_at) at the end of the
segment that covers t + LEAD_S, and the next write comes LEAD_S before that expiry or at the
next change, whichever is first. So a lower limit applies up to LEAD_S early, a higher one on
time, and a key always exists while a profile limits, even if a write comes a little late. A
dead ocpp16 leaves no limit past the moment it stops being right.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bus import Bus, contract
from bus.messages import ChargingLimit, LimitSource
from workers.ocpp16.smart_charging.model import Purpose, tenths_down
from workers.ocpp16.smart_charging.schedule import Limit, Segment, earliest, lower

log = logging.getLogger(__name__)

LEAD_S = 1.0
SOURCES = {Purpose.charge_point_max_profile: LimitSource.OCPP_CHARGE_POINT_MAX,
           Purpose.tx_default_profile: LimitSource.OCPP_TX_DEFAULT,
           Purpose.tx_profile: LimitSource.OCPP_TX, None: LimitSource.OCPP_COMPOSITE}


@dataclass(frozen=True)
class Publication:
    """What one key holds from `at` on, and when to look again (None: only on a change)."""

    limit: Limit | None  # None: delete the key
    expires_at: datetime | None
    wake_at: datetime | None


def plan(found: Sequence[Segment], at: datetime, lead: timedelta = timedelta(seconds=LEAD_S)) -> Publication:
    """The publication at `at` of segments that start at `at` and reach past `at + lead`."""
    horizon = at + lead
    window = [segment for segment in found if segment.start <= horizon]
    limit = lower(*(segment.limit for segment in window))
    last = window[-1]
    if limit is None:
        return Publication(None, None, window[0].end)
    expires_at = last.end if last.limit is not None else last.start  # limited until then at least
    rewrite_at = None if expires_at is None or expires_at - lead <= at else expires_at - lead
    return Publication(limit, expires_at, earliest(window[0].end, rewrite_at))


class LimitPublisher:
    """Writes the keys; `segments_of(connector_id, at, until)` gives each scope's segments."""

    def __init__(self, bus: Bus, scope_ids: Sequence[int],
                 segments_of: Callable[[int, datetime, datetime], list[Segment]]) -> None:
        self._bus = bus
        self._scope_ids = tuple(scope_ids)
        self._segments_of = segments_of
        self._written: dict[int, Limit | None] = {}

    async def publish(self, at: datetime) -> datetime | None:
        """Write every key for instant `at`; returns when to publish again (None: on a change)."""
        wake: datetime | None = None
        for scope_id in self._scope_ids:
            publication = plan(self._segments_of(scope_id, at, at + timedelta(seconds=LEAD_S)), at)
            await self._write(scope_id, publication, at)
            wake = earliest(wake, publication.wake_at)
        return wake

    async def _write(self, scope_id: int, publication: Publication, at: datetime) -> None:
        limit = publication.limit
        if limit is None:
            await self._bus.delete(contract.OCPP_LIMIT, connector_id=scope_id)
            self._note(scope_id, None)
            return
        message = ChargingLimit(connector_id=scope_id, limit_w=tenths_down(limit.watts),
                                source=SOURCES[limit.purpose], expires_at=publication.expires_at, set_at=at)
        await self._bus.set(contract.OCPP_LIMIT, message, ttl_s=message.ttl_s(at), connector_id=scope_id)
        self._note(scope_id, limit)

    def _note(self, scope_id: int, limit: Limit | None) -> None:
        if self._written.get(scope_id) != limit:
            log.info("OCPP limit for %s: %s", f"connector {scope_id}" if scope_id else "the station",
                     "none" if limit is None else f"{limit.watts:.0f} W ({SOURCES[limit.purpose].value})")
        self._written[scope_id] = limit
