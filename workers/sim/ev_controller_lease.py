"""The simulated controller's lease on the station's output commands (docs/controller-protocol.md,
version 2): the clock a station-protocol controller runs so that a station that falls silent
leaves its output at zero (safety invariant 4).

Every accepted write to the command block restarts the lease with the `lease_ds` then held;
when it runs out the controller (ev_controller.py) clears `enable` and the power limit, and
the state reads `expired` until the station writes `enable` again. The lease runs on the wall
clock (monotonic), not on the session's scaled clock: it is a contract with the station.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from workers.drivers.controllers.interface import LeaseState


@dataclass
class OutputLease:
    clock: Callable[[], float] = time.monotonic
    duration_s: float | None = None  # None = no lease (the station wrote lease_ds = 0, or never)
    expired: bool = False
    _deadline: float | None = field(default=None, repr=False)

    def renew(self, duration_s: float | None, *, enable_written: bool) -> None:
        """A write reached the command block; `enable_written` ends a reported expiry."""
        self.duration_s = duration_s
        self._deadline = None if duration_s is None else self.clock() + duration_s
        if enable_written:
            self.expired = False

    def runs_out(self) -> bool:
        """True once, at the moment the lease runs out without a new write."""
        if self._deadline is None or self.clock() < self._deadline:
            return False
        self._deadline, self.expired = None, True
        return True

    def state(self) -> LeaseState:
        if self.expired:
            return LeaseState.EXPIRED
        return LeaseState.NONE if self.duration_s is None else LeaseState.RUNNING
