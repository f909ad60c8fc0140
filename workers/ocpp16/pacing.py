"""A loop paced by a seconds configuration key (HeartbeatInterval), following a change at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from workers.ocpp16.config_keys import ConfigKey, ConfigurationStore


class IntervalPacer:
    """Paces a loop by a seconds key and follows a change at once: the wait is counted from the
    last tick with the newest value, so a shorter interval that has already passed ticks now (a
    CSMS lowering HeartbeatInterval from 300 s to 10 s must not wait out the old 300 s).
    An interval of 0 means "off": `wait` then returns only after the key becomes positive."""

    def __init__(self, store: ConfigurationStore, key: ConfigKey,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._key = key
        self._clock = clock
        self._changed = asyncio.Event()
        self._last = clock()
        store.listen(key, lambda *_: self._changed.set())

    def restart(self) -> None:
        """Count the next interval from now."""
        self._last = self._clock()

    async def wait(self) -> None:
        """Until one interval has passed since the last tick (or `restart`)."""
        while True:
            self._changed.clear()
            interval_s = self._store.get(self._key)
            remaining_s = self._last + interval_s - self._clock() if interval_s > 0 else None
            if remaining_s is not None and remaining_s <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining_s)
        self._last = self._clock()
