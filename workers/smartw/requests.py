"""What smartw does when someone asks: a card at the reader, a start or stop command.

Cards: the same card as a running session stops it; otherwise the card starts the connector
that waits for a card (HMI start button) or the one EV plugged without a session; with no
such connector an accepted card of the same group (parentIdTag, from Authorize) as a running
session stops that session (OCPP 1.6 §3.5, OCTT TC_069_CS), and any other accepted card waits
for the next EV to be plugged (swipe, then plug). A card never starts anything on a connector
that has a session. A start that waits (for a card or for the EV) lapses after OCPP
ConnectionTimeOut (workers/smartw/ocpp_rules.py).

An Inoperative connector (availability.py) starts nothing: commands get the reason
"unavailable", cards pass it by. A connector held by a reservation (reservations.py) starts
only an idTag the reservation admits: others get the reason "reserved", and a card that every
usable connector is reserved against is not even authorized (OCTT TC_046_1_CS); a card whose
own reservation waits on a connector starts there, before its EV is plugged. Where only the
idTag's group (parentIdTag) could admit it, the group is learnt from Authorize, also for a
remote start that needs no authorization otherwise.

In free mode a plugged EV (or the HMI's start button) starts at once with the configured idTag,
without a card or Authorize; a card still works as usual (a reserved connector still refuses
the free idTag).

A card whose cable a Type 2 socket keeps locked after its session (workers/smartw/cable_lock.py)
only releases that cable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bus import Bus, BusRequestError, contract
from bus.enums import AuthorizationStatus, StartSource, StopReason
from bus.messages import (
    AuthorizeReply,
    AuthorizeRequest,
    AuthResult,
    CommandResult,
    StartRequest,
    StopRequest,
)
from workers.smartw.availability import Availability
from workers.smartw.connector import ConnectorRuntime, PendingStart
from workers.smartw.ocpp_rules import same_id_tag
from workers.smartw.sessions import SessionControl, StartRefused
from workers.smartw.status import RESERVED

log = logging.getLogger(__name__)


class Requests:
    """Card, start and stop handling over the connectors smartw owns."""

    def __init__(self, bus: Bus, connectors: dict[int, ConnectorRuntime], control: SessionControl,
                 availability: Availability | None = None,
                 release_cable: Callable[[str], bool] = lambda _: False) -> None:
        self.bus = bus
        self.release_cable = release_cable  # a card frees the cable a socket holds for it (cable_lock.py)
        self.connectors = connectors
        self.control = control
        self.availability = availability or Availability.from_settings(connectors)
        self.pending_card: PendingStart | None = None
        self.reservations = control.reservations
        self.ocpp = control.ocpp
        self._background: set[asyncio.Task[None]] = set()

    # ---- cards ------------------------------------------------------------------------

    async def card(self, uid: str) -> None:
        tag = uid.upper()
        if self.release_cable(tag):
            return
        running = self._connector_with_tag(tag)
        if running is not None:
            if not running.stopping:
                running.stopping = True
                self.spawn(self.control.stop(running, StopReason.LOCAL, id_tag=tag))
            await self._announce(running.id, tag, AuthorizationStatus.ACCEPTED)
            return
        target = self._card_target()
        if self.reservations.shut_out(tag, target) and not self._groups_running():
            log.info("card %s: every connector it could start on is reserved for another idTag", tag)
            return
        reply = await self._authorize(tag)
        await self._announce(target.id if target else None, tag, reply.status)
        if reply.status is not AuthorizationStatus.ACCEPTED:
            return
        target = target or self.reservations.reserved_for(tag, reply.parent_id_tag)
        if target is None:
            await self._stop_for_group_or_wait(tag, reply.parent_id_tag)
            return
        await self._start(target, tag, reply.parent_id_tag)

    async def _stop_for_group_or_wait(self, tag: str, parent_id_tag: str | None) -> None:
        """An accepted card with nowhere to start: it stops its group's session, else it waits."""
        grouped = self._session_of_group(parent_id_tag) if parent_id_tag else None
        if grouped is not None:
            log.info("card %s of group %s stops the session on connector %s", tag, parent_id_tag, grouped.id)
            grouped.stopping = True
            self.spawn(self.control.stop(grouped, StopReason.LOCAL, id_tag=tag))
            return
        self.pending_card = PendingStart(id_tag=tag, parent_id_tag=parent_id_tag)
        log.info("card %s accepted; waiting for an EV to be plugged", tag)

    def _connector_with_tag(self, tag: str) -> ConnectorRuntime | None:
        for connector in self.connectors.values():
            if connector.session and same_id_tag(connector.session.id_tag, tag):
                return connector
        return None

    def _session_of_group(self, parent_id_tag: str) -> ConnectorRuntime | None:
        """A running session (not ending) whose idTag belongs to the group `parent_id_tag`."""
        for connector in self.connectors.values():
            session = connector.session
            if session is not None and not connector.stopping and same_id_tag(session.parent_id_tag,
                                                                               parent_id_tag):
                return connector
        return None

    def _groups_running(self) -> bool:
        """Whether a card could stop a running session for its group (its group is only known
        after Authorize)."""
        return any(c.session is not None and c.session.parent_id_tag for c in self.connectors.values())

    def _card_target(self) -> ConnectorRuntime | None:
        timeout_s = self.ocpp.connection_timeout_s
        waiting = [c for c in self.connectors.values()
                   if c.pending and c.pending.id_tag is None and not c.pending.expired(timeout_s)]
        if waiting:
            return waiting[0]
        idle = [c for c in self.connectors.values() if c.plugged and c.session is None
                and c.pending is None and not c.finishing and c.operative]
        return idle[0] if len(idle) == 1 else None

    async def _authorize(self, tag: str) -> AuthorizeReply:
        try:
            return await self.bus.request(contract.AUTHORIZE, AuthorizeRequest(id_tag=tag))
        except BusRequestError as error:
            log.error("authorization of %s failed: %s", tag, error)
            return AuthorizeReply(status=AuthorizationStatus.INVALID)

    async def _announce(self, connector_id: int | None, tag: str, status: AuthorizationStatus) -> None:
        await self.bus.publish(contract.AUTH_RESULTS,
                               AuthResult(connector_id=connector_id, id_tag=tag, status=status))

    async def _start(self, connector: ConnectorRuntime, tag: str,
                     parent_id_tag: str | None = None) -> CommandResult:
        try:
            reason = await self.control.start(connector, tag, parent_id_tag)
        except StartRefused as refused:
            log.warning("connector %s: start for %s refused: %s", connector.id, tag, refused.reason)
            return CommandResult(accepted=False, reason=refused.reason)
        return CommandResult(accepted=True, reason=reason)

    async def ev_plugged(self, connector: ConnectorRuntime) -> None:
        """An EV was just plugged: resume the session that waited for it, honour a start that
        waited for it, or start a free session."""
        if connector.ev_away:
            await self.control.ev_returned(connector)
            return
        if not connector.operative:
            return  # a card waiting for a plug keeps waiting for an operative connector
        timeout_s = self.ocpp.connection_timeout_s
        pending = connector.pending
        if pending is not None and pending.id_tag is not None and not pending.expired(timeout_s):
            await self._start(connector, pending.id_tag, pending.parent_id_tag)
            return
        card = self.pending_card
        if (card is not None and card.id_tag and not card.expired(timeout_s) and connector.pending is None
                and self.reservations.refusal(connector, card.id_tag, card.parent_id_tag) is None):
            self.pending_card = None  # a card waits on for an EV at a connector it is not shut out of
            await self._start(connector, card.id_tag, card.parent_id_tag)
            return
        free_tag = self.availability.free_mode_id_tag
        if free_tag is not None:
            log.info("connector %s: free mode, starting for %s", connector.id, free_tag)
            await self._start(connector, free_tag)

    # ---- commands -----------------------------------------------------------------------

    async def start_command(self, request: StartRequest) -> CommandResult:
        connector = self.connectors.get(request.connector_id)
        if connector is None:
            return CommandResult(accepted=False, reason="unknown_connector")
        blocked = self.control.refusal(connector)  # a fault, or set Inoperative
        if blocked:
            return CommandResult(accepted=False, reason=blocked)
        if connector.session is not None:
            return CommandResult(accepted=False, reason="busy")
        free_tag = self.availability.free_mode_id_tag
        if request.id_tag is None and free_tag is not None:
            return await self._start(connector, free_tag)
        if request.id_tag is None:
            connector.pending = PendingStart(id_tag=None)
            return CommandResult(accepted=True, reason="present_card")
        return await self._start_with_tag(connector, request)

    async def _start_with_tag(self, connector: ConnectorRuntime, request: StartRequest) -> CommandResult:
        tag, parent = request.id_tag, request.parent_id_tag
        assert tag is not None
        needs_parent = parent is None and self.reservations.needs_parent(connector, tag)
        if not needs_parent and self.reservations.refusal(connector, tag, parent):
            return CommandResult(accepted=False, reason=RESERVED)  # not worth an Authorize
        if request.source is StartSource.REMOTE or request.authorized:
            if needs_parent:
                parent = (await self._authorize(tag)).parent_id_tag
            return await self._start(connector, tag, parent)
        reply = await self._authorize(tag)
        await self._announce(connector.id, tag, reply.status)
        if reply.status is not AuthorizationStatus.ACCEPTED:
            return CommandResult(accepted=False, reason="card_rejected")
        return await self._start(connector, tag, reply.parent_id_tag or parent)

    async def stop_command(self, request: StopRequest) -> CommandResult:
        connector = self.connectors.get(request.connector_id)
        if connector is None:
            return CommandResult(accepted=False, reason="unknown_connector")
        if connector.session is None:
            if connector.pending is not None:
                connector.pending = None
                return CommandResult(accepted=True, reason="start_cancelled")
            return CommandResult(accepted=False, reason="no_session")
        if not connector.stopping:
            connector.stopping = True  # at once: the control cycle must not re-enable it
            self.spawn(self.control.stop(connector, request.reason, id_tag=request.id_tag))
        return CommandResult(accepted=True, reason="stopping")

    def spawn(self, coroutine) -> None:
        """Stops run in the background: a stop waits for the power to ramp down, and the
        caller (HMI, CSMS, card reader) must get its answer at once. So do starts on a plug and
        row updates, which must not hold up the control cycle."""
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work (a stop, a start, a session's row) failed", exc_info=task.exception())

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
