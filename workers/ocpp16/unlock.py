"""UnlockConnector.req (OCPP 1.6 §5.18; errata 3.85; ocpp16.md §2.10).

UnlockConnector exists to release a cable stuck in a socket's retention lock. This station has
no such lock to drive: its DC connectors have fixed cables by standard, and station.toml has no
way to declare a Type 2 socket with a lock actuator (an IO coil and a feedback input), so its
Type 2 connectors are fixed-cable ones too. The answer is therefore NotSupported, as for an
unknown connectorId (OCTT TC_017_2, TC_018_2, TC_031); UnlockFailed is kept for a lock that
exists but does not open (TC_030), which needs that actuator.

"If there was a transaction in progress on the specific connector, then Charge Point SHALL
finish the transaction first" (§5.18): a session there is stopped through smartw (contract.STOP,
reason UnlockCommand) before the answer; its StopTransaction follows from smartw's session
event, and the connector shows Finishing while the EV stays plugged. Answered inside the `@on`
handler: one bus request bounded by the command's timeout, nothing sent to the CSMS from here.
"""

from __future__ import annotations

import logging

from ocpp.v16.enums import UnlockStatus
from redis.exceptions import RedisError

from bus import Bus, BusRequestError, contract
from bus.enums import StopReason
from bus.messages import StopRequest

log = logging.getLogger(__name__)


async def unlock_connector(bus: Bus, connector_ids: tuple[int, ...], connector_id: int) -> UnlockStatus:
    if connector_id not in connector_ids:
        log.info("UnlockConnector %s: not a connector of this station: NotSupported", connector_id)
        return UnlockStatus.not_supported
    if await _session_on(bus, connector_id):
        await _stop_session(bus, connector_id)
    log.info("UnlockConnector %s: fixed cable, no lock to open: NotSupported", connector_id)
    return UnlockStatus.not_supported


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
