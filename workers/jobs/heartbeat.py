"""The jobs service's bus heartbeat, refreshed by a thread beside the RQ worker loop.

Why a thread: the RQ worker loop is synchronous and blocks for long stretches (BLPOP while
idle, waiting for the forked job process while busy) with no hook at a 0.5 s cadence, and
the bus heartbeat's TTL is 2 s. The thread runs its own event loop with its own `Bus`, so it
shares no connection with the worker, and it is started before and stopped after
`Worker.work()`. Limit: it proves the worker process is alive, not that the loop makes
progress; a job that hangs is bounded by RQ's job timeout instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from bus import Bus, contract
from bus.messages import Heartbeat
from bus.service import REDIS_ERRORS

log = logging.getLogger(__name__)


class HeartbeatThread(threading.Thread):
    """Writes contract.HEARTBEAT for `service` every `interval_s` with `ttl_s` until stopped."""

    def __init__(self, service: str, *, interval_s: float, ttl_s: float) -> None:
        super().__init__(name=f"{service}-heartbeat", daemon=True)
        self.service = service
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self._stop_requested = threading.Event()

    def run(self) -> None:
        asyncio.run(self._beat())

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop_requested.set()
        if self.is_alive():
            self.join(timeout_s)

    async def _beat(self) -> None:
        bus = Bus(self.service)
        failing = False
        try:
            while not self._stop_requested.is_set():
                try:
                    await bus.set(contract.HEARTBEAT, Heartbeat(service=self.service, pid=os.getpid()),
                                  ttl_s=self.ttl_s, service=self.service)
                    if failing:
                        log.info("%s heartbeat restored", self.service)
                    failing = False
                except REDIS_ERRORS as error:
                    (log.debug if failing else log.error)("%s heartbeat failed: %s", self.service, error)
                    failing = True
                await asyncio.sleep(self.interval_s)
        finally:
            await bus.close()
