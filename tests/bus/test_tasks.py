"""Running loops together and stopping them, even when a loop loses a cancel.

The stubborn loop below swallows its first cancel the way redis-py's `wait_for` does on
Python 3.11 (a send that finished just as the cancel arrived): `asyncio.TaskGroup` would then
wait for it forever, which is how a stopping ocpp16 once hung until it was killed.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from bus.tasks import cancel_and_wait, first_done, run_all


class Boom(Exception):
    pass


async def stubborn_loop(cancels_swallowed: int, seen: list[str]) -> None:
    """Runs forever; the first `cancels_swallowed` cancels are lost."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if cancels_swallowed == 0:
                seen.append("stopped")
                raise
            cancels_swallowed -= 1
            seen.append("swallowed")


async def fail_soon(delay_s: float = 0.01) -> None:
    await asyncio.sleep(delay_s)
    raise Boom("lost Redis")


async def test_run_all_stops_a_loop_that_lost_its_first_cancel() -> None:
    seen: list[str] = []
    with pytest.raises(Boom):
        await asyncio.wait_for(run_all(stubborn_loop(2, seen), fail_soon()), 2)
    assert seen == ["swallowed", "swallowed", "stopped"]


async def test_run_all_waits_for_every_job_when_none_fails() -> None:
    finished: list[int] = []

    async def job(number: int, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        finished.append(number)

    await run_all(job(1, 0.05), job(2, 0.0), job(3, 0.02))
    assert sorted(finished) == [1, 2, 3]


async def test_first_done_cancels_the_others_and_returns() -> None:
    seen: list[str] = []
    await asyncio.wait_for(first_done(stubborn_loop(1, seen), asyncio.sleep(0.01)), 2)
    assert seen == ["swallowed", "stopped"]


async def test_first_done_reraises_the_first_error_unchanged() -> None:
    seen: list[str] = []
    with pytest.raises(Boom, match="lost Redis"):
        await first_done(stubborn_loop(0, seen), fail_soon())
    assert seen == ["stopped"]


async def test_nothing_to_run_returns_at_once() -> None:
    await run_all()
    await first_done()


async def test_a_task_that_never_stops_is_reported_with_where_it_waits(caplog) -> None:
    deaf = True

    async def deaf_loop() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if not deaf:
                    raise

    task = asyncio.create_task(deaf_loop(), name="never-stops")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="bus.tasks"):
        assert await cancel_and_wait([task], within_s=0.2) is False
    assert "never-stops" in caplog.text and "deaf_loop" in caplog.text
    deaf = False
    assert await cancel_and_wait([task], within_s=1) is True
