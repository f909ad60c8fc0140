"""Cancelling tasks that talk to Redis, reliably.

On Python 3.11 a cancel can be lost inside redis-py: its `asyncio.wait_for` returns the
result when a send finished just as the cancel arrived (fixed in 3.12), and the task runs on.
So cancel again until the tasks end, within a deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)

CANCEL_REPEAT_S = 0.05  # a task still running after a cancel is cancelled again this often


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]], *, within_s: float = 5.0) -> bool:
    """Cancel `tasks` until they are done; False if some still run after `within_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    pending = {task for task in tasks if not task.done()}
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=CANCEL_REPEAT_S)
    if pending:
        log.error("%d task(s) still running %.1f s after being cancelled", len(pending), within_s)
    return not pending
