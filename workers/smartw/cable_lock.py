"""Type 2 sockets' cable locks (station.toml `lock_coil` / `lock_feedback`; a connector without
them has a fixed cable and nothing here applies to it).

Locking: right before the contactor closes (ContactorInterlock in interlock.py calls `lock`), so a
contactor never closes on an unlocked socket. The start waits for the position switch; if it
does not report locked within `[io_module].lock_timeout_s` the start is refused (UI key
`lock_failure`, OCPP ConnectorLockFailure, OCTT TC_024_CS), any pending start is dropped and the
lock is opened again so the half-inserted plug can come out.

Unlocking: once no session needs the lock and the contactor reads open (coil and auxiliary
contact), checked every control cycle (`follow`): after the normal end of a session, a failed
start, a smartw restart. UnlockConnector (`unlock_command`, bus command smartw.unlock) stops the
session there first (reason UnlockCommand, ramp-down included), then opens the lock and answers
from the position switch: Unlocked or UnlockFailed (OCTT TC_017_1, TC_018_1, TC_030).

What keeps a lock closed without a running session: a DeAuthorized stop (OCPP 1.6 §3.5.4: the cable
stays locked until its owner returns), and UnlockConnectorOnEVSideDisconnect false when the
session ended with its EV side disconnected. Such a cable opens when the session's idTag is
presented at the reader (`release_for_card`) or on UnlockConnector. While a session waits for its
EV (StopTransactionOnEVSideDisconnect false, SuspendedEV) the lock stays closed, unless
UnlockConnectorOnEVSideDisconnect is true: then it opens, and closes again (before the contactor)
when an EV is plugged back in. Holds live in smartw's memory: stopping smartw opens every lock
whose contactor reads open, and the IO driver's first write at start opens them too.

Supervision: the switch must follow the coil within the timeout. A lock that does not close, or
comes open by itself, is a fault (ConnectorLockFailure, `lock_failure`) until the EV leaves; a
session running there is ended by the control cycle, ramping down first. A lock that does not
open is a fault until its switch reads open (an UnlockConnector tries again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from bus.enums import StopReason, UnlockStatus
from bus.messages import UnlockReply, UnlockRequest
from workers.drivers.io_module import IoSnapshot
from workers.smartw.connector import ActiveSession, ConnectorRuntime
from workers.smartw.faults import LOCK_FAILURE
from workers.smartw.hardware import HardwareError, StationHardware
from workers.smartw.ocpp_rules import OcppRules, same_id_tag
from workers.smartw.sessions import StartRefused

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often the position switch is read while a lock moves

StopSession = Callable[[ConnectorRuntime], Awaitable[bool]]  # ends the session (UnlockCommand)


@dataclass
class _LockState:
    commanded: bool | None = None  # True = locked; None: not commanded since smartw started
    commanded_at: float = 0.0
    failed_locking: bool = False  # it did not close, or came open: the fault stands until the EV leaves


class CableLocks:
    """Every socket's lock: commands, supervision, holds and UnlockConnector."""

    def __init__(self, connectors: Mapping[int, ConnectorRuntime], hardware: StationHardware,
                 timeout_s: float, ocpp: OcppRules, stop_session: StopSession,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._connectors = {cid: c for cid, c in connectors.items() if c.config.has_lock}
        self._hardware = hardware
        self._timeout_s = timeout_s
        self._ocpp = ocpp
        self._stop_session = stop_session
        self._clock = clock
        self._states = {cid: _LockState() for cid in self._connectors}
        self._holds: dict[int, str] = {}  # connector id -> the idTag whose card releases the cable

    # ---- locking before the contactor closes -------------------------------------------

    async def lock(self, connector_id: int) -> None:
        """Lock a socket and wait for its switch (nothing to do on a fixed cable). Raises
        StartRefused(lock_failure) when it does not lock, HardwareError when the IO module
        does not take the command."""
        connector = self._connectors.get(connector_id)
        if connector is None:
            return
        self._holds.pop(connector_id, None)  # a new session on the held cable: its own rules apply
        await self._command(connector_id, True)
        if await self._reaches(connector_id, True):
            return
        self._fail(connector, locking=True)
        connector.pending = None  # the start is over: plug in again to retry
        await self._command_quietly(connector_id, False)  # let the half-inserted plug out
        raise StartRefused(LOCK_FAILURE.info)

    # ---- sessions ending, cards, UnlockConnector ------------------------------------------

    def session_ended(self, connector: ConnectorRuntime, session: ActiveSession, reason: StopReason) -> None:
        """Called as a session ends (contactor open): decide whether its cable stays locked."""
        if connector.id not in self._connectors:
            return
        ev_side_gone = not connector.plugged or connector.ev_away
        if reason is StopReason.DE_AUTHORIZED or (
                ev_side_gone and not self._ocpp.rules.unlock_on_ev_side_disconnect):
            self._holds[connector.id] = session.id_tag
            log.info("connector %s: cable stays locked until %s is presented (%s)", connector.id,
                     session.id_tag, reason.value)

    def release_for_card(self, id_tag: str) -> bool:
        """A card whose held cable is released (the next cycle opens the lock); False: none."""
        for connector_id, held in self._holds.items():
            if same_id_tag(held, id_tag):
                del self._holds[connector_id]
                log.info("connector %s: card %s releases its cable", connector_id, id_tag)
                return True
        return False

    async def unlock_command(self, request: UnlockRequest) -> UnlockReply:
        """UnlockConnector: finish the session there (UnlockCommand), then open the lock."""
        connector = self._connectors.get(request.connector_id)
        if connector is None:
            return UnlockReply(status=UnlockStatus.NOT_SUPPORTED)  # unknown, or a fixed cable
        if connector.session is not None:
            connector.stopping = True  # at once: the control cycle must not offer it power again
            await self._stop_session(connector)
        async with connector.lock:
            if connector.session is not None:
                log.error("connector %s: a session started again before the unlock", connector.id)
                return UnlockReply(status=UnlockStatus.UNLOCK_FAILED)
            self._holds.pop(connector.id, None)
            unlocked = await self._unlock(connector)
        log.info("connector %s: UnlockConnector: %s", connector.id, "unlocked" if unlocked else "failed")
        return UnlockReply(status=UnlockStatus.UNLOCKED if unlocked else UnlockStatus.UNLOCK_FAILED)

    async def _unlock(self, connector: ConnectorRuntime) -> bool:
        """Open the lock once the contactor reads open (its contacts may still be moving)."""
        if not await self._seen(connector.id, lambda io: not _live(connector.id, io)):
            log.error("connector %s: contactor reads closed; the socket is not unlocked", connector.id)
            return False
        try:
            await self._command(connector.id, False)
        except HardwareError as error:
            log.error("connector %s: cannot unlock: %s", connector.id, error)
            return False
        if await self._reaches(connector.id, False):
            return True
        self._fail(connector, locking=False)
        return False

    async def release_all(self) -> None:
        """smartw stops: open every lock whose contactor reads open (sessions are over)."""
        try:
            io = await self._hardware.read_io()
        except HardwareError as error:
            log.error("cable locks not opened at shutdown: %s", error)
            return
        for connector_id in self._connectors:
            if not _live(connector_id, io):
                await self._command_quietly(connector_id, False)

    # ---- every control cycle -------------------------------------------------------------

    async def follow(self, io: IoSnapshot | None) -> None:
        """Judge every lock against its switch and open those no session needs (IO lost, or a
        lock the snapshot does not show: what was known stands, nothing is commanded)."""
        if io is None:
            return
        now = self._clock()
        for connector in self._connectors.values():
            if connector.id not in io.locks_locked:
                continue
            self._judge(connector, io, now)
            if self._unneeded(connector, io):
                await self._command_quietly(connector.id, False)

    def _judge(self, connector: ConnectorRuntime, io: IoSnapshot, now: float) -> None:
        state, locked = self._states[connector.id], io.locks_locked[connector.id]
        if state.commanded is None:
            return
        if locked == state.commanded:
            if state.failed_locking and connector.plugged:
                return  # a lock that failed stays a fault until its EV has left
            if connector.lock_fault is not None:
                log.info("connector %s: cable lock follows its coil again", connector.id)
            state.failed_locking, connector.lock_fault = False, None
        elif now - state.commanded_at >= self._timeout_s and not connector.lock.locked():
            self._fail(connector, locking=state.commanded)

    def _unneeded(self, connector: ConnectorRuntime, io: IoSnapshot) -> bool:
        """Locked (or unknown) though nothing needs it, nothing is under way, the socket is dead."""
        if self._states[connector.id].commanded is False or connector.lock.locked():
            return False
        if connector.id in self._holds or _live(connector.id, io):
            return False
        if connector.session is None:
            return True
        return connector.ev_away and self._ocpp.rules.unlock_on_ev_side_disconnect

    # ---- the hardware ----------------------------------------------------------------------

    async def _command(self, connector_id: int, locked: bool) -> None:
        state = self._states[connector_id]
        state.commanded, state.commanded_at = locked, self._clock()
        await self._hardware.set_lock(connector_id, locked)

    async def _command_quietly(self, connector_id: int, locked: bool) -> None:
        try:
            await self._command(connector_id, locked)
        except HardwareError as error:
            log.error("connector %s: cable lock command failed: %s", connector_id, error)

    async def _reaches(self, connector_id: int, locked: bool) -> bool:
        """Whether the position switch reports `locked` within the timeout."""
        return await self._seen(connector_id, lambda io: io.locks_locked.get(connector_id) is locked)

    async def _seen(self, connector_id: int, condition: Callable[[IoSnapshot], bool]) -> bool:
        """Whether an IO poll shows `condition` within the lock timeout."""
        deadline = self._clock() + self._timeout_s
        while True:
            try:
                if condition(await self._hardware.read_io()):
                    return True
            except HardwareError as error:
                log.warning("connector %s: IO module not read: %s", connector_id, error)
            if self._clock() >= deadline:
                return False
            await asyncio.sleep(POLL_S)

    def _fail(self, connector: ConnectorRuntime, *, locking: bool) -> None:
        if connector.lock_fault is None:
            log.error("connector %s: cable lock %s within %.1f s", connector.id,
                      "did not lock (or came open)" if locking else "did not open", self._timeout_s)
        self._states[connector.id].failed_locking |= locking
        connector.lock_fault = LOCK_FAILURE


def _live(connector_id: int, io: IoSnapshot) -> bool:
    """The socket may carry voltage: its contactor's coil or auxiliary contact reads closed."""
    return bool(io.contactors_closed.get(connector_id) or io.contactor_feedback.get(connector_id))
