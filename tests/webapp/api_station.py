"""smartw's side of the commands the REST API sends, played on the real bus for the API tests.

`FakeSmartw` answers START, STOP, AVAILABILITY and FREE_MODE as told and records every request.
`answering(smartw)` serves it from the test's event loop (async tests); `answering_in_thread`
from a thread of its own, for synchronous callers (the in-process WSGI app of the schema test).
Both return once every consumer group exists, so no request is sent before it can be read.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from bus import Bus, contract
from bus.messages import (
    AvailabilityReply,
    ChangeAvailabilityRequest,
    CommandResult,
    FreeModeRequest,
    StartRequest,
    StopRequest,
)
from tests.support.bus_servers import serving
from tests.support.waiting import async_wait_until

COMMANDS = (contract.START, contract.STOP, contract.AVAILABILITY, contract.FREE_MODE)
READY_TIMEOUT_S = 5.0


@dataclass
class FakeSmartw:
    accept: bool = True
    reason: str = ""
    availability: Literal["Accepted", "Rejected", "Scheduled"] = "Accepted"
    requests: list[Any] = field(default_factory=list)

    async def start(self, request: StartRequest) -> CommandResult:
        return self._result(request)

    async def stop(self, request: StopRequest) -> CommandResult:
        return self._result(request)

    async def free_mode(self, request: FreeModeRequest) -> CommandResult:
        return self._result(request)

    async def set_availability(self, request: ChangeAvailabilityRequest) -> AvailabilityReply:
        self.requests.append(request)
        return AvailabilityReply(status=self.availability)

    def _result(self, request: Any) -> CommandResult:
        self.requests.append(request)
        return CommandResult(accepted=self.accept, reason=self.reason)


@asynccontextmanager
async def answering(smartw: FakeSmartw) -> AsyncIterator[None]:
    handlers = {contract.START: smartw.start, contract.STOP: smartw.stop,
                contract.AVAILABILITY: smartw.set_availability, contract.FREE_MODE: smartw.free_mode}
    async with serving("smartw", handlers) as server:
        await _groups_exist(server)
        yield


@contextmanager
def answering_in_thread(smartw: FakeSmartw) -> Iterator[None]:
    ready, stop = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        async with answering(smartw):
            ready.set()
            await asyncio.to_thread(stop.wait)

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as error:  # reported to the test below, never lost in the thread
            failure.append(error)
            ready.set()

    thread = threading.Thread(target=run, name="fake-smartw", daemon=True)
    thread.start()
    ready.wait(READY_TIMEOUT_S * 2)
    try:
        if failure or not ready.is_set():
            raise AssertionError(f"the fake smartw did not start: {failure}")
        yield
    finally:
        stop.set()
        thread.join(READY_TIMEOUT_S * 2)


async def _groups_exist(bus: Bus) -> None:
    streams = [bus.names.command(spec.name) for spec in COMMANDS]

    async def every_group_exists() -> bool:
        for stream in streams:
            if not (await bus.redis.exists(stream) and await bus.redis.xinfo_groups(stream)):
                return False
        return True

    await async_wait_until(every_group_exists, timeout_s=READY_TIMEOUT_S, what="smartw's consumer groups")
