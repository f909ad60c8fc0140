"""A StartTransaction.conf that refuses the idTag of a transaction already running (OCPP 1.6
§3.5.4; errata 3.17; ocpp16.md §2.4): typically a start authorized offline, or pre-authorized
from the cache, that the CSMS no longer accepts (OCTT TC_037_2, TC_037_3).

StopTransactionOnInvalidId=true: smartw is asked to stop that session (contract.STOP, reason
DeAuthorized), if it still runs; its StopTransaction then follows like any other. A Type 2
socket with a cable lock keeps the cable locked until that idTag is presented again or
UnlockConnector comes (workers/smartw/cable_lock.py).
StopTransactionOnInvalidId=false: the transaction goes on, but its energy stops once the session
has delivered MaxEnergyOnInvalidId Wh (0: at once): contract.OCPP_DEAUTHORIZED names the session
and the allowance, smartw withholds power past it and shows SuspendedEVSE
(workers/smartw/ocpp_rules.py); the key goes when the session ends (txkeys.py).
"""

from __future__ import annotations

import logging

from redis.exceptions import TimeoutError as RedisTimeoutError

from bus import Bus, BusRequestError, contract
from bus.enums import AuthorizationStatus, StopReason
from bus.messages import Deauthorized, StopRequest
from webapp.station.models import Transaction
from workers.ocpp16 import config_keys as keys
from workers.ocpp16.config_keys import ConfigurationStore

log = logging.getLogger(__name__)


class InvalidIdPolicy:
    def __init__(self, bus: Bus, config: ConfigurationStore) -> None:
        self._bus = bus
        self._config = config

    async def start_refused(self, tx: Transaction, status: AuthorizationStatus) -> None:
        where = f"transaction {tx.transaction_id} on connector {tx.connector_id}"
        running = await self._bus.get(contract.OCPP_TRANSACTION, connector_id=tx.connector_id)
        if running is None or running.session_id != tx.session_id:
            log.info("%s: idTag %s refused (%s) after the transaction ended", where, tx.id_tag, status)
            return
        if not self._config.get(keys.STOP_TRANSACTION_ON_INVALID_ID):
            allowance_wh = self._config.get(keys.MAX_ENERGY_ON_INVALID_ID)
            log.warning("%s: the CSMS answered idTag %s with %s; StopTransactionOnInvalidId is false, "
                        "so it goes on with at most %d Wh (MaxEnergyOnInvalidId)", where, tx.id_tag, status,
                        allowance_wh)
            await self._bus.set(contract.OCPP_DEAUTHORIZED, Deauthorized(
                connector_id=tx.connector_id, session_id=tx.session_id, id_tag=tx.id_tag,
                max_energy_wh=allowance_wh), connector_id=tx.connector_id)
            return
        request = StopRequest(connector_id=tx.connector_id, reason=StopReason.DE_AUTHORIZED)
        try:
            result = await self._bus.request(contract.STOP, request)
        except (BusRequestError, RedisTimeoutError) as error:
            log.error("%s: idTag %s refused (%s) but smartw could not be asked to stop: %s",
                      where, tx.id_tag, status, error)
            return
        log.warning("%s: idTag %s refused (%s): stop DeAuthorized %s", where, tx.id_tag, status,
                    "requested" if result.accepted else f"refused by smartw ({result.reason})")
