"""Puts web's operator settings on the bus: the HMI's (contract.HMI_SETTINGS) and the
station power limit (contract.OPERATOR_LIMIT, connector 0).

When: at web's start, at once after every change (`publish_now`), and every REFRESH_S, so
a Redis that restarted (it keeps nothing) has them back within seconds.

The station limit is written only when the key is missing or the stored limit changed, so a
temporary limit set with `manage.py limit set --station` is not overwritten on the next
refresh; `manage.py limit clear --station` brings back the configured one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from asgiref.sync import sync_to_async
from django.db import DatabaseError

from bus import Bus, contract
from bus.service import REDIS_ERRORS
from webapp.station import operator_settings
from webapp.station.operator_settings import STATION_ID, OperatorSettings

log = logging.getLogger(__name__)

REFRESH_S = 5.0


async def publish(bus: Bus, settings: OperatorSettings, *, changed: bool) -> None:
    """Write the HMI settings; write (or delete) the station limit when `changed` or missing."""
    await bus.set(contract.HMI_SETTINGS, settings.hmi())
    limit = settings.station_limit()
    current = await bus.get(contract.OPERATOR_LIMIT, connector_id=STATION_ID)
    if limit is None:
        if changed and current is not None:
            await bus.delete(contract.OPERATOR_LIMIT, connector_id=STATION_ID)
    elif changed or current is None:
        await bus.set(contract.OPERATOR_LIMIT, limit, connector_id=STATION_ID)


async def publish_now() -> bool:
    """Publish the stored settings after a change; False when the bus is unreachable (the
    periodic refresh then publishes them once it is back)."""
    settings = await sync_to_async(operator_settings.load)()
    bus = Bus("web")
    try:
        await publish(bus, settings, changed=True)
    except REDIS_ERRORS as error:
        log.error("operator settings not published (Redis: %s); retried every %.0f s", error, REFRESH_S)
        return False
    finally:
        await bus.close()
    return True


async def keep_published(bus: Bus, stopping: asyncio.Event) -> None:
    """web's background loop: publish at start, then refresh until stopping."""
    failing = False
    while not stopping.is_set():
        try:
            await publish(bus, await sync_to_async(operator_settings.load)(), changed=False)
            failing = False
        except (*REDIS_ERRORS, DatabaseError) as error:  # tried again at the next refresh
            (log.debug if failing else log.error)("operator settings not published: %s", error)
            failing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), REFRESH_S)
