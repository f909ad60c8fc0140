"""Opening every contactor and link without load, when there is time to (safety invariant 3):
at smartw's start (after a crash or a quick restart an EV may still draw what the last offer
allowed, until the controller's lease runs out and its output ramps down), at its graceful
stop, and when a lost IO module answers again.

Every controller is told to stop offering energy, then each is polled until it measures no
current (or, without a current measurement, until its EV no longer asks for energy), and
only then does everything open. A controller that does not answer is waited for up to its
lease plus a ramp down; after that the contactors open anyway, with a warning: an emergency
(e-stop, door, insulation) never waits, it goes through the guard's open_all(emergency=True).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from workers.drivers.controllers.interface import EvState
from workers.smartw.hardware import OUTPUT_LEASE_S, HardwareError, StationHardware
from workers.smartw.module_switching import ZERO_CURRENT_A

log = logging.getLogger(__name__)

RAMP_DOWN_TIMEOUT_S = OUTPUT_LEASE_S + 3.0  # a lease running out, then the output's ramp down
POLL_S = 0.1


async def open_unloaded(hardware: StationHardware, connector_ids: Iterable[int], *,
                        timeout_s: float = RAMP_DOWN_TIMEOUT_S,
                        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                        clock: Callable[[], float] = time.monotonic) -> None:
    waiting = set(connector_ids)
    for connector_id in sorted(waiting):
        try:
            await hardware.set_output(connector_id, False, 0.0)
        except HardwareError as error:
            log.error("connector %s: cannot disable controller: %s", connector_id, error)
    deadline = clock() + timeout_s
    while waiting:
        for connector_id in sorted(waiting):
            if await _current_stopped(hardware, connector_id):
                waiting.discard(connector_id)
        if not waiting or clock() >= deadline:
            break
        await sleep(POLL_S)
    if waiting:
        log.warning("connectors %s: no zero current seen in %.0f s; opening their contactors anyway",
                    sorted(waiting), timeout_s)
    await hardware.open_all(emergency=False)


async def _current_stopped(hardware: StationHardware, connector_id: int) -> bool:
    try:
        snapshot = await hardware.poll_controller(connector_id)
    except HardwareError:
        return False
    current = snapshot.present.current_a
    if current is None:  # no measurement (e.g. an AC controller): an EV not asking draws nothing
        return snapshot.ev_state is not EvState.C
    return abs(current) <= ZERO_CURRENT_A
