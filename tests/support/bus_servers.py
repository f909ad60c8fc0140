"""Play another service's side of bus commands in a test: `serving(name, {spec: handler})`
serves each command on the real bus until the block ends (tests that isolate one service)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from bus import Bus, contract


@asynccontextmanager
async def serving(service: str, handlers: Mapping[contract.CommandSpec[Any, Any],
                                                  Callable[[Any], Awaitable[Any]]]) -> AsyncIterator[Bus]:
    """Serve the commands as `service` would; yields that service's Bus (to publish with it)."""
    stop, server = asyncio.Event(), Bus(service)
    tasks = [asyncio.create_task(server.serve(spec, handler, stop=stop))
             for spec, handler in handlers.items()]
    try:
        yield server
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await server.close()
