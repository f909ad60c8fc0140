"""smartw's control loop shares the power every period and at once when a session starts or
begins to end (issue 4: "every cycle and at once on any event"): the loop of the real service,
driven by a stand-in for StationLogic that only counts its cycles."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from tests.support.waiting import async_wait_until
from workers.smartw.service import SmartwService
from workers.smartw.sessions import SessionControl
from workers.smartw.timeline import SessionTimeline

PERIOD_S = 5.0  # long, so a cycle that comes sooner can only have been woken


@dataclass
class CountingLogic:
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    cycles: list[float] = field(default_factory=list)

    async def cycle(self) -> None:
        self.cycles.append(time.monotonic())


async def test_a_session_change_runs_the_next_cycle_at_once_not_a_period_later() -> None:
    service = SmartwService()
    service.stopping = asyncio.Event()
    logic = CountingLogic()
    control = SessionControl(None, None, lambda: None, SessionTimeline(),  # type: ignore[arg-type]
                             changed=logic.wake.set)
    loop = asyncio.create_task(service._control_loop(logic, PERIOD_S))  # type: ignore[arg-type]
    try:
        async def cycles(count: int) -> bool:
            return len(logic.cycles) >= count

        await async_wait_until(lambda: cycles(1), what="the first cycle")
        woken_at = time.monotonic()
        control.changed()  # what start and stop call
        await async_wait_until(lambda: cycles(2), timeout_s=PERIOD_S + 1, what="the woken cycle")
        assert logic.cycles[1] - woken_at < 1.0, "the woken cycle waited for the period"
    finally:
        service.stopping.set()
        logic.wake.set()
        await asyncio.wait_for(loop, timeout=PERIOD_S + 1)
