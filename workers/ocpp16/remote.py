"""RemoteStart/RemoteStopTransaction carried out over the bus (OCPP 1.6 §5.11, §5.12).

Answered inside the library's `@on` handler: each is one bus request bounded by the command's
timeout (5 s), short enough for the receive loop to wait (ocpp16.md §6.3); nothing here calls
the CSMS. With AuthorizeRemoteTxRequests the handler first has the idTag authorized
(workers/ocpp16/auth); an Authorize.req that this needs runs after the answer, then calls
`start_on` itself (auth/remote_start.py).

Without a connectorId the start goes to the connector reserved for the idTag (or its group) if
there is one, else to a free one. smartw is told the idTag's group (parentIdTag) when the local
list or the cache knows it, so a card of the same group can stop the session.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pydantic import ValidationError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bus import Bus, BusRequestError, contract
from bus.enums import ConnectorStatus, StartSource, StopReason
from bus.messages import StartRequest, StopRequest, utcnow

if TYPE_CHECKING:
    from workers.ocpp16.auth.authorizer import Authorizer

log = logging.getLogger(__name__)

ParentOf = Callable[[str], Awaitable[str | None]]  # idTag -> its parentIdTag, if known here


async def no_parent(id_tag: str) -> str | None:
    return None


def known_parents(auth: Authorizer) -> ParentOf:
    """The parentIdTag the local list or the cache holds for an idTag (no CSMS round trip)."""
    async def parent_of(id_tag: str) -> str | None:
        known = await auth.known(id_tag)
        return known.info.parent_id_tag if known is not None else None
    return parent_of

FREE_STATUSES = (ConnectorStatus.PREPARING, ConnectorStatus.AVAILABLE)  # in order of preference
# The CSMS waits for our answer (often 10 s): a remote start is pre-authorized, so smartw needs
# no Authorize round trip and answers well within this, or the answer is Rejected.
SMARTW_ANSWER_S = 5.0


class BusRemoteControl:
    """Implements protocol.RemoteControl with smartw's START/STOP commands."""

    def __init__(self, bus: Bus, connector_ids: tuple[int, ...], accepted: Callable[[], bool]) -> None:
        self._bus = bus
        self._ids = connector_ids
        self._accepted = accepted
        self.parent_of: ParentOf = no_parent  # features.py sets known_parents(ctx.auth)

    async def remote_start(self, id_tag: str, connector_id: int | None) -> bool:
        target = await self.start_target(connector_id, id_tag)
        return target is not None and await self.start_on(target, id_tag)

    async def start_target(self, connector_id: int | None, id_tag: str | None = None) -> int | None:
        """The connector a RemoteStartTransaction starts on (chosen when not given: the one
        reserved for `id_tag` first), or None: then the answer is Rejected."""
        if not self._accepted():
            log.warning("RemoteStartTransaction before registration was Accepted: rejected")
            return None
        if connector_id is None:
            reserved = await self._reserved_for(id_tag) if id_tag else None
            connector_id = reserved or await self._free_connector()
            if connector_id is None:
                log.info("RemoteStartTransaction without connector: none is free")
        elif connector_id not in self._ids:  # includes 0 (OCTT TC_027_CS)
            log.info("RemoteStartTransaction for connector %s: not a connector of this station", connector_id)
            return None
        return connector_id

    async def start_on(self, connector_id: int, id_tag: str) -> bool:
        """Ask smartw to start an authorized idTag; True if it accepted."""
        request = StartRequest(connector_id=connector_id, id_tag=id_tag, source=StartSource.REMOTE,
                               authorized=True, parent_id_tag=await self.parent_of(id_tag))
        return await self._ask(contract.START, request)

    async def remote_stop(self, transaction_id: int) -> bool:
        if not self._accepted():
            return False
        for connector_id in self._ids:
            running = await self._bus.get(contract.OCPP_TRANSACTION, connector_id=connector_id)
            if running is not None and running.transaction_id == transaction_id:
                return await self._ask(contract.STOP, StopRequest(connector_id=connector_id,
                                                                  reason=StopReason.REMOTE))
        log.info("RemoteStopTransaction %s: no such transaction running", transaction_id)
        return False

    async def _reserved_for(self, id_tag: str) -> int | None:
        """The connector whose own reservation admits `id_tag` (or its group), if any."""
        try:
            reservations = await self._bus.get(contract.RESERVATIONS)
        except ValidationError as error:
            log.error("reservations on the bus are unreadable: %s", error)
            return None
        if reservations is None:
            return None
        parent = await self.parent_of(id_tag)
        for hold in reservations.active(utcnow()):
            if hold.connector_id in self._ids and hold.admits(id_tag, parent):
                return hold.connector_id
        return None

    async def _free_connector(self) -> int | None:
        states = {}
        for connector_id in self._ids:
            state = await self._bus.get(contract.CONNECTOR, connector_id=connector_id)
            if state is not None:
                states[connector_id] = state.status
        for wanted in FREE_STATUSES:
            for connector_id in self._ids:
                if states.get(connector_id) == wanted:
                    return connector_id
        return None

    async def _ask(self, spec: contract.CommandSpec, request: StartRequest | StopRequest) -> bool:
        try:
            result = await self._bus.request(spec, request, timeout_s=SMARTW_ANSWER_S)
        except (BusRequestError, RedisTimeoutError) as error:
            log.warning("%s for connector %s failed: %s", spec.name, request.connector_id, error)
            return False
        if not result.accepted:
            log.info("%s for connector %s refused: %s", spec.name, request.connector_id, result.reason)
        return result.accepted
