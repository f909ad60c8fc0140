"""Reset.req carried out (OCPP 1.6 §5.14, §7.42; errata 3.36, 3.81; ocpp16.md §2.9).

The CALLRESULT goes first (the handler answers Accepted and calls `request` from its `@after`
hook); then, in a task of its own that outlives the connection:

1. a ResetOrReboot security event, when the security feature exists;
2. every session still running is stopped through smartw (contract.STOP) with reason SoftReset
   or HardReset, and we wait until smartw has ended it and its StopTransaction is queued (the
   transaction queue is persisted, so it survives the restart);
3. while the CSMS is reachable, a short wait for those StopTransactions to be delivered, so the
   CSMS usually hears them before the next BootNotification (OCTT TC_015/TC_016 accept either);
4. chargepoint is asked to restart the station's services (contract.RESTART, workers/chargepoint/
   restart.py), retried `ResetRetries` times. It stops this process too; the new one boots (a
   reboot always sends BootNotification). If chargepoint never accepts, ocpp16 restarts alone
   (SIGTERM to itself, so the work in hand ends cleanly): an OCPP-level reboot at least.

Soft and Hard differ in the stop reason and in chargepoint: a hard restart also runs the
station's reboot command when one is configured (STATION_REBOOT_COMMAND, off by default).
Availability set by ChangeAvailability survives either way: smartw keeps it in the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ocpp.v16.enums import ResetType
from redis.exceptions import RedisError

from bus import BusRequestError, contract
from bus.enums import StopReason
from bus.messages import RestartRequest, StopRequest
from webapp.station.models import OutboxMessage, Transaction
from workers.ocpp16 import config_keys as keys
from workers.ocpp16.txqueue import db

if TYPE_CHECKING:
    from workers.ocpp16.context import ChargePointContext

log = logging.getLogger(__name__)

SESSIONS_END_WAIT_S = 30.0  # a stop ramps the current down first; after this, restart anyway
DELIVERY_WAIT_S = 10.0  # time for the StopTransactions to reach the CSMS before the restart
RESTART_RETRY_PAUSE_S = 1.0
POLL_S = 0.2
SECURITY_EVENT = "ResetOrReboot"
STOP_REASONS = {ResetType.soft: StopReason.SOFT_RESET, ResetType.hard: StopReason.HARD_RESET}


def _open_transactions() -> int:
    return Transaction.objects.filter(stopped_at__isnull=True).count()


def _undelivered_transaction_messages() -> int:
    return OutboxMessage.objects.filter(lane=OutboxMessage.Lane.TRANSACTION,
                                        state=OutboxMessage.State.PENDING).count()


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float) -> bool:
    """Poll `condition` until it holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_S)
    return True


class StationReset:
    """One reset at a time; a Hard request during a Soft one makes it hard."""

    def __init__(self, ctx: ChargePointContext) -> None:
        self._ctx = ctx
        self._kind: ResetType | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def in_progress(self) -> bool:
        return self._task is not None and not self._task.done()

    def request(self, kind: ResetType) -> None:
        """Start the reset (after Reset.conf was sent); returns at once."""
        if self.in_progress:
            if kind == ResetType.hard:
                self._kind = ResetType.hard
            log.info("Reset %s while a reset is in progress: it goes on as %s", kind, self._kind)
            return
        self._kind = kind
        self._task = asyncio.create_task(self._perform(), name="ocpp16.reset")
        self._task.add_done_callback(self._finished)

    async def _perform(self) -> None:
        assert self._kind is not None
        log.warning("Reset %s requested by the Central System", self._kind)
        await self._security_event()
        await self._stop_sessions(STOP_REASONS[self._kind])
        if not await wait_for(self._sessions_ended, SESSIONS_END_WAIT_S):
            log.error("sessions still running %.0f s after the reset stop; restarting anyway "
                      "(smartw ends them with reason Reboot)", SESSIONS_END_WAIT_S)
        if self._ctx.is_accepted() and not await wait_for(self._delivered, DELIVERY_WAIT_S):
            log.warning("transaction messages not delivered before the reset; they stay queued")
        await self._restart()

    async def _security_event(self) -> None:
        security = self._ctx.security
        if security is None:
            return
        try:
            await security.event(SECURITY_EVENT, f"{self._kind} reset requested by the Central System")
        except Exception:  # a reset must happen even when its security log entry cannot be written
            log.exception("security event %s not recorded", SECURITY_EVENT)

    async def _stop_sessions(self, reason: StopReason) -> None:
        for connector_id in self._ctx.settings.connector_ids:
            if not await self._session_on(connector_id):
                continue
            try:
                result = await self._ctx.bus.request(contract.STOP, StopRequest(connector_id=connector_id,
                                                                                reason=reason))
            except (BusRequestError, RedisError) as error:
                log.error("reset: stopping the session on connector %s failed: %s", connector_id, error)
                continue
            log.info("reset: session on connector %s %s", connector_id,
                     "stopping" if result.accepted else f"not stopped ({result.reason})")

    async def _session_on(self, connector_id: int) -> bool:
        """smartw runs a session there, or ocpp16 still has a transaction open there."""
        state = await self._ctx.bus.get(contract.CONNECTOR, connector_id=connector_id)
        if state is not None and state.session_id is not None:
            return True
        return await self._ctx.bus.get(contract.OCPP_TRANSACTION, connector_id=connector_id) is not None

    async def _sessions_ended(self) -> bool:
        for connector_id in self._ctx.settings.connector_ids:
            state = await self._ctx.bus.get(contract.CONNECTOR, connector_id=connector_id)
            if state is not None and state.session_id is not None:
                return False
        return await db(_open_transactions) == 0

    async def _delivered(self) -> bool:
        return await db(_undelivered_transaction_messages) == 0

    async def _restart(self) -> None:
        attempts = 1 + self._ctx.config.get(keys.RESET_RETRIES)
        for attempt in range(1, attempts + 1):
            kind = self._kind or ResetType.soft
            request = RestartRequest(kind="hard" if kind == ResetType.hard else "soft",
                                     reason=f"OCPP Reset {kind}")
            try:
                result = await self._ctx.bus.request(contract.RESTART, request)
            except (BusRequestError, RedisError) as error:
                log.error("reset: chargepoint did not answer the restart request (attempt %s of %s): %s",
                          attempt, attempts, error)
            else:
                if result.accepted:
                    log.warning("reset: chargepoint restarts the station's services")
                    return
                log.error("reset: chargepoint refused the restart (%s), attempt %s of %s",
                          result.reason, attempt, attempts)
            if attempt < attempts:
                await asyncio.sleep(RESTART_RETRY_PAUSE_S)
        log.error("reset: no restart by chargepoint; restarting ocpp16 alone")
        os.kill(os.getpid(), signal.SIGTERM)

    def _finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("reset failed", exc_info=task.exception())
