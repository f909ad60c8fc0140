"""A simulated Type 2 socket's cable lock, as the simulated IO module drives and reads it.

The lock's actuator hangs on an IO module output (`lock_coil`, on = locked) and its position
switch on an input (`lock_feedback`, active = locked). The bolt follows its coil after the same
delay as a contactor's contacts; the fault `lock_stuck<N>` (one per lock, a fault kind of the
`io` device) holds connector N's bolt where it is, so a test can make locking fail (OCTT TC_024:
the plug is half in, the bolt cannot enter) or unlocking fail (TC_030: the cable is pulled, the
bolt is jammed). The lock is not in the e-stop's coil circuit: pressing e-stop moves no bolt.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.common.io_config import IoPoint
from workers.common.station_config import ConnectorConfig

TIMER_SLACK_S = 0.001  # asyncio may run a timer up to its clock resolution early


@dataclass
class SimCableLock:
    connector_id: int
    coil: int
    feedback: IoPoint
    locked: bool = False  # where the bolt is (what the position switch reports)
    coil_on: bool = False
    coil_changed_at: float = 0.0

    @classmethod
    def of(cls, connector: ConnectorConfig) -> SimCableLock | None:
        """The connector's lock; None for a fixed cable."""
        if connector.lock_coil is None or connector.lock_feedback is None:
            return None
        return cls(connector.id, connector.lock_coil, connector.lock_feedback)

    @property
    def fault_kind(self) -> str:
        return f"lock_stuck{self.connector_id}"

    def follow(self, coil_on: bool, now: float, delay_s: float, *, stuck: bool) -> None:
        """Note the coil (as of `now`); the bolt reaches it `delay_s` after its last change,
        unless it is stuck."""
        if coil_on != self.coil_on:
            self.coil_on, self.coil_changed_at = coil_on, now
        if not stuck and now - self.coil_changed_at >= delay_s - TIMER_SLACK_S:
            self.locked = coil_on
