"""The OCPP configuration keys smartw obeys during sessions, published on the bus.

smartw starts and stops sessions but does not read ocpp16's configuration store (services share
only the bus and the database), so ocpp16 writes contract.SESSION_RULES from its keys:
ConnectionTimeOut and StopTransactionOnEVSideDisconnect (what smartw does with them:
workers/smartw/ocpp_rules.py), and UnlockConnectorOnEVSideDisconnect (a Type 2 socket's cable
lock: workers/smartw/cable_lock.py; read-only false on a station whose cables are all fixed).
The key is written when ocpp16 starts and again right after a ChangeConfiguration of one of
them, so a change applies at smartw's next control cycle; it is also rewritten every REWRITE_S,
so a Redis that restarted and lost it gets it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from bus import Bus, contract
from bus.messages import SessionRules
from workers.ocpp16 import config_keys as keys
from workers.ocpp16.config_keys import ConfigKey, ConfigurationStore

log = logging.getLogger(__name__)

REWRITE_S = 30.0
PUBLISHED_KEYS = (keys.CONNECTION_TIME_OUT, keys.STOP_TRANSACTION_ON_EV_SIDE_DISCONNECT,
                  keys.UNLOCK_CONNECTOR_ON_EV_SIDE_DISCONNECT)


def session_rules(config: ConfigurationStore) -> SessionRules:
    return SessionRules(connection_timeout_s=config.get(keys.CONNECTION_TIME_OUT),
                        stop_on_ev_side_disconnect=config.get(keys.STOP_TRANSACTION_ON_EV_SIDE_DISCONNECT),
                        unlock_on_ev_side_disconnect=config.get(keys.UNLOCK_CONNECTOR_ON_EV_SIDE_DISCONNECT))


class SessionRulesPublisher:
    """A background feature (context.py): keeps contract.SESSION_RULES equal to the keys."""

    def __init__(self, bus: Bus, config: ConfigurationStore) -> None:
        self._bus = bus
        self._config = config
        self._changed = asyncio.Event()
        for key in PUBLISHED_KEYS:
            config.listen(key, self._on_change)

    def _on_change(self, key: ConfigKey, value: Any) -> None:
        self._changed.set()

    async def run(self) -> None:
        while True:
            self._changed.clear()
            rules = session_rules(self._config)
            await self._bus.set(contract.SESSION_RULES, rules)
            log.debug("session rules published: %s", rules)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), REWRITE_S)
