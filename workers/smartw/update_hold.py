"""The station's hold for an install (contract.UPDATE_HOLD): while it stands no session starts
and every idle connector shows Unavailable ('updating').

The FOTA job asks for it right before it installs, and renews it while it works. It is granted
only while no connector has a session, so an update never cuts a charge short. It lapses by
itself after `hold_s` without a renewal: a job that died must not leave the station shut. It
is kept in memory only, so a restart of smartw frees the station too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bus.messages import UpdateHoldReply, UpdateHoldRequest

log = logging.getLogger(__name__)

UPDATING = "updating"  # UI key: the connector waits for an install (also a start's refusal)


class UpdateHold:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: float | None = None
        self.reason = ""

    @property
    def active(self) -> bool:
        return self._until is not None and self._clock() < self._until

    def request(self, request: UpdateHoldRequest, charging: list[int]) -> UpdateHoldReply:
        """Grant, renew or release. `charging`: the connectors that have a session now."""
        if not request.hold:
            return self._release()
        if charging:
            log.info("update hold for %r refused: connectors %s charge", request.reason, charging)
            return UpdateHoldReply(granted=False, charging=sorted(charging),
                                   detail=f"connectors {', '.join(map(str, sorted(charging)))} charge")
        renewed = self.active
        self._until = self._clock() + request.hold_s
        self.reason = request.reason
        if not renewed:
            log.warning("station held for an update (%s) for %g s", request.reason or "-", request.hold_s)
        return UpdateHoldReply(granted=True, detail=f"held for {request.hold_s:g} s")

    def lapse(self) -> bool:
        """Forget a hold whose time has passed; True the one time that happens (for the log)."""
        if self._until is None or self.active:
            return False
        log.warning("update hold (%s) expired without a renewal; sessions may start again", self.reason)
        self._until, self.reason = None, ""
        return True

    def _release(self) -> UpdateHoldReply:
        held = self.active
        self._until, self.reason = None, ""
        if held:
            log.info("update hold released")
        return UpdateHoldReply(granted=True, detail="released" if held else "no hold stood")
