"""UnlockConnector.req (OCPP 1.6 §5.18; errata 3.85; ocpp16.md §2.10).

UnlockConnector exists to release a cable stuck in a socket's retention lock. Only a Type 2
socket declared with a cable lock in station.toml (`lock_coil` / `lock_feedback`) has one: smartw
does the whole job (contract.UNLOCK, workers/smartw/cable_lock.py): "if there was a transaction in
progress on the specific connector, then Charge Point SHALL finish the transaction first", so it
stops the session (reason UnlockCommand, ramp-down and an open contactor before the lock moves),
then opens the lock and answers from its position switch: Unlocked, or UnlockFailed when the
switch does not follow (OCTT TC_017_1, TC_018_1, TC_030). A smartw that does not answer in time
means UnlockFailed: the cable may still be held.

Every other connector has a fixed cable (DC by standard, Type 2 without a lock): NotSupported, as
for an unknown connectorId (TC_017_2, TC_018_2, TC_031); a session there is still finished first,
through smartw's stop command (contract.STOP, reason UnlockCommand). Its StopTransaction follows
from smartw's session event, and the connector shows Finishing while the EV stays plugged.

Answered inside the `@on` handler: one bus request bounded by the command's timeout, nothing sent
to the CSMS from here (the StopTransaction goes through the transaction queue).
"""

from __future__ import annotations

import logging

from ocpp.v16.enums import UnlockStatus
from redis.exceptions import RedisError

from bus import Bus, BusRequestError, contract
from bus.enums import StopReason
from bus.messages import StopRequest, UnlockRequest

log = logging.getLogger(__name__)


async def unlock_connector(bus: Bus, connector_ids: tuple[int, ...], connector_id: int,
                           lock_connector_ids: tuple[int, ...] = ()) -> UnlockStatus:
    if connector_id not in connector_ids:
        log.info("UnlockConnector %s: not a connector of this station: NotSupported", connector_id)
        return UnlockStatus.not_supported
    if connector_id in lock_connector_ids:
        return await _open_lock(bus, connector_id)
    if await _session_on(bus, connector_id):
        await _stop_session(bus, connector_id)
    log.info("UnlockConnector %s: fixed cable, no lock to open: NotSupported", connector_id)
    return UnlockStatus.not_supported


async def _open_lock(bus: Bus, connector_id: int) -> UnlockStatus:
    try:
        reply = await bus.request(contract.UNLOCK, UnlockRequest(connector_id=connector_id))
    except (BusRequestError, RedisError) as error:
        log.error("UnlockConnector %s: smartw did not answer (%s): UnlockFailed", connector_id, error)
        return UnlockStatus.unlock_failed
    log.info("UnlockConnector %s: %s", connector_id, reply.status)
    return UnlockStatus(reply.status.value)


async def _session_on(bus: Bus, connector_id: int) -> bool:
    state = await bus.get(contract.CONNECTOR, connector_id=connector_id)
    return state is not None and state.session_id is not None


async def _stop_session(bus: Bus, connector_id: int) -> None:
    try:
        result = await bus.request(contract.STOP, StopRequest(connector_id=connector_id,
                                                              reason=StopReason.UNLOCK_COMMAND))
    except (BusRequestError, RedisError) as error:
        log.error("UnlockConnector %s: stopping its session failed: %s", connector_id, error)
        return
    if result.accepted:
        log.info("UnlockConnector %s: session stopping (UnlockCommand)", connector_id)
    else:
        log.warning("UnlockConnector %s: session not stopped: %s", connector_id, result.reason)
