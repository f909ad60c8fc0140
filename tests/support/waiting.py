"""Wait for a condition with a deadline instead of sleeping and asserting (STYLE anti-pattern 5).

The poll step is short; a test fails with the last seen value when the deadline passes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
POLL_S = 0.05


def wait_until(probe: Callable[[], T], *, timeout_s: float = 10.0, what: str = "condition") -> T:
    """Call `probe` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout_s
    last: T = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last: {last!r}")
        time.sleep(POLL_S)
        last = probe()
    return last


async def async_wait_until(probe: Callable[[], Awaitable[T]], *, timeout_s: float = 10.0,
                           what: str = "condition") -> T:
    """Await `probe` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout_s
    last: T = await probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last: {last!r}")
        await asyncio.sleep(POLL_S)
        last = await probe()
    return last
