"""Cancelling tasks that talk to Redis, reliably.

On Python 3.11 a cancel can be lost inside redis-py: its `asyncio.wait_for` returns the
result when a send finished just as the cancel arrived (fixed in 3.12), and the task runs on.
So cancel again until the tasks end, within a deadline. `asyncio.TaskGroup` and `gather`
cancel a child only once and then wait for it forever: a child that lost its cancel keeps the
whole service from stopping. Run loops together with `first_done` or `run_all` instead.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Iterable

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
        log.error("%d task(s) still running %.1f s after being cancelled:\n%s", len(pending), within_s,
                  "\n".join(_where(task) for task in pending))
    return not pending


def _where(task: asyncio.Task[object]) -> str:
    """The task's name and the await it is stuck in (innermost coroutine frames)."""
    stream = io.StringIO()
    task.print_stack(limit=20, file=stream)
    return stream.getvalue()


async def first_done(*jobs: Awaitable[object]) -> None:
    """Run jobs together; when the first ends, cancel the rest and re-raise its error if any."""
    await _together(jobs, asyncio.FIRST_COMPLETED)


async def run_all(*jobs: Awaitable[object]) -> None:
    """Run jobs together until all have ended (TaskGroup's rule); the first to fail cancels the
    rest and its error is re-raised unchanged (so a service can reconnect on a Redis error)."""
    await _together(jobs, asyncio.FIRST_EXCEPTION)


async def _together(jobs: Iterable[Awaitable[object]], until: str) -> None:
    tasks = [asyncio.ensure_future(job) for job in jobs]
    if not tasks:
        return
    try:
        done, _ = await asyncio.wait(tasks, return_when=until)
    finally:
        await cancel_and_wait(tasks)
    for task in tasks:  # retrieved, so asyncio does not log "exception was never retrieved"
        if task.done() and not task.cancelled():
            task.exception()
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
