"""RemoteStartTransaction when AuthorizeRemoteTxRequests is true and the idTag is not
pre-authorized locally (OCPP 1.6 §5.11; ocpp16.md §2.7, §6.3).

The Authorize.req cannot be sent from inside the RemoteStartTransaction handler: the library
reads no frame (so not its answer either) until the handler returns. So the handler picks the
connector, answers Accepted ("will attempt") and `hold`s the start under the CALL's unique id;
the handler's `@after` hook `release`s it once the answer has left, and a background task
authorizes the idTag like a local start (list, cache, Authorize.req, offline rules) and asks
smartw to start only if that says Accepted (OCTT TC_023_5: a refused idTag starts nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bus.enums import AuthorizationStatus

log = logging.getLogger(__name__)

MAX_HELD = 16  # starts answered but not yet released; more means @after hooks never ran

Authorize = Callable[[str], Awaitable[AuthorizationStatus]]
StartOn = Callable[[int, str], Awaitable[bool]]  # (connector_id, id_tag) -> smartw accepted
Spawn = Callable[[Coroutine[Any, Any, None]], None]


@dataclass(frozen=True)
class HeldStart:
    id_tag: str
    connector_id: int


class DeferredRemoteStarts:
    def __init__(self, authorize: Authorize, start_on: StartOn, spawn: Spawn) -> None:
        self._authorize = authorize
        self._start_on = start_on
        self._spawn = spawn
        self._held: dict[str, HeldStart] = {}

    def hold(self, call_id: str, id_tag: str, connector_id: int) -> None:
        self._held[call_id] = HeldStart(id_tag, connector_id)
        for stale in list(self._held)[:-MAX_HELD]:
            log.warning("remote start %s was never released; dropped", stale)
            del self._held[stale]

    def release(self, call_id: str) -> None:
        """After the RemoteStartTransaction answer left: authorize, then start."""
        held = self._held.pop(call_id, None)
        if held is not None:
            self._spawn(self._authorize_then_start(held))

    async def _authorize_then_start(self, held: HeldStart) -> None:
        status = await self._authorize(held.id_tag)
        if status is not AuthorizationStatus.ACCEPTED:
            log.info("remote start for %s on connector %s: idTag %s, nothing started",
                     held.id_tag, held.connector_id, status)
            return
        started = await self._start_on(held.connector_id, held.id_tag)
        log.info("remote start for %s on connector %s: authorized, smartw %s", held.id_tag,
                 held.connector_id, "starts" if started else "refused")
