"""The base class that owns a service's loop (STYLE habit 9).

A service implements `run()`. The base gives it: a `Bus`, a heartbeat key with a TTL
(chargepoint restarts a service whose heartbeat expires), signal handling (first SIGTERM
sets `stopping` and lets the work in hand finish within `stop_grace_s`, a second one
cancels at once), and Redis reconnect with backoff (1 s doubling to 60 s).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from abc import ABC, abstractmethod
from typing import ClassVar

import redis.exceptions

from bus import contract
from bus.client import Bus
from bus.messages import Heartbeat
from bus.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RECONNECT_FIRST_S = 1.0
RECONNECT_MAX_S = 60.0
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Service(ABC):
    """One station service = one OS process running one `Service`."""

    name: ClassVar[str]
    heartbeat_interval_s: ClassVar[float] = 0.5
    heartbeat_ttl_s: ClassVar[float] = 2.0
    stop_grace_s: ClassVar[float] = 10.0
    ready_at_start: ClassVar[bool] = True  # False: the service calls mark_ready() when it serves

    def __init__(self) -> None:
        self.bus: Bus
        self.stopping: asyncio.Event
        self._run_task: asyncio.Task[None] | None = None
        self._canceller: asyncio.Task[bool] | None = None
        self._ready = self.ready_at_start

    @abstractmethod
    async def run(self) -> None:
        """The service's work; return (or notice `self.stopping`) to stop."""

    def mark_ready(self) -> None:
        """Say (in the heartbeat) that what this service provides is up; chargepoint holds the
        services that need it until then."""
        self._ready = True

    def main(self) -> int:
        """Run until stopped; returns the process exit code."""
        return asyncio.run(self._main())

    async def sleep(self, seconds: float) -> bool:
        """Sleep, waking early when stopping; returns True if the service should go on."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    async def _main(self) -> int:
        self.stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal)
        self.bus = Bus(self.name)
        beats = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        try:
            return await self._run_with_reconnect()
        finally:
            beats.cancel()
            await self.bus.close()
            log.info("%s stopped", self.name)

    async def _run_with_reconnect(self) -> int:
        delay = RECONNECT_FIRST_S
        while not self.stopping.is_set():
            self._run_task = asyncio.create_task(self.run(), name=f"{self.name}.run")
            try:
                await self._run_task
                return 0
            except REDIS_ERRORS as error:
                log.error("%s lost Redis (%s); retrying in %.0f s", self.name, error, delay)
                if not await self.sleep(delay):
                    break
                delay = min(delay * 2, RECONNECT_MAX_S)
            except asyncio.CancelledError:
                if self.stopping.is_set():
                    break
                raise
        return 0

    def _on_signal(self) -> None:
        if self.stopping.is_set():
            log.warning("%s: second stop signal, cancelling now", self.name)
            self._cancel_run(self._run_task)
            return
        self.request_stop()

    def request_stop(self) -> None:
        """Stop as on a first SIGTERM: `stopping` is set, the work in hand finishes, run() is
        cancelled after stop_grace_s. A repeated request changes nothing (unlike a second signal)."""
        if self.stopping.is_set():
            return
        log.info("%s: stop requested, finishing work in hand", self.name)
        self.stopping.set()
        if self._run_task:
            asyncio.get_running_loop().call_later(self.stop_grace_s, self._cancel_run, self._run_task)

    def _cancel_run(self, task: asyncio.Task[None] | None) -> None:
        if task is not None and not task.done():
            self._canceller = asyncio.create_task(cancel_and_wait([task]))

    async def _heartbeat_loop(self) -> None:
        failing = False
        while True:
            try:
                await self.bus.set(contract.HEARTBEAT,
                                   Heartbeat(service=self.name, pid=os.getpid(), ready=self._ready),
                                   ttl_s=self.heartbeat_ttl_s, service=self.name)
                if failing:
                    log.info("%s heartbeat restored", self.name)
                failing = False
            except REDIS_ERRORS as error:
                (log.debug if failing else log.error)("%s heartbeat failed: %s", self.name, error)
                failing = True
            await asyncio.sleep(self.heartbeat_interval_s)
