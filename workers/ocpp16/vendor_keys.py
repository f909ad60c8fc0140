"""Vendor configuration keys for the station's own settings (prefix `Station`, config_keys.py).

Why they are not stored like the other keys: free mode and its idTag belong to smartw, which
keeps them in the RuntimeSettings row (its only writer) and applies them. A copy kept by ocpp16
would go stale the moment an operator ran `manage.py station free-mode`, so GetConfiguration
reads the row each time, and ChangeConfiguration asks smartw over the bus (contract.FREE_MODE):
only smartw's "accepted" makes the answer Accepted; a refusal, a timeout or a bus error is
Rejected and nothing is stored anywhere.

No `StationMaxPowerKw`: the operator limit (contract.OPERATOR_LIMIT) has one writer, web (the
configurator and `manage.py limit`), and a CSMS already has its own standard way to cap the
station, a ChargePointMaxProfile (Smart Charging), which smartw obeys through OCPP_LIMIT. A
vendor key writing the operator limit would give that key a second writer and the CSMS two
ways to do one thing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError
from redis.exceptions import RedisError

from bus import Bus, BusRequestError, contract
from bus.messages import FreeModeRequest
from webapp.station.models import RuntimeSettings
from workers.ocpp16 import config_keys as keys
from workers.ocpp16.txqueue import db

log = logging.getLogger(__name__)

SMARTW_ANSWER_S = 5.0  # inside a CSMS request's handler: the CSMS usually waits 10 s or more


@dataclass(frozen=True)
class FreeMode:
    """smartw's free-mode settings as its RuntimeSettings row holds them."""

    enabled: bool
    id_tag: str

    def values(self) -> dict[str, str]:
        """The vendor keys' OCPP strings."""
        return {keys.STATION_FREE_MODE.name: keys.STATION_FREE_MODE.format(self.enabled),
                keys.STATION_FREE_MODE_ID_TAG.name: self.id_tag}


def _row() -> FreeMode:
    row = RuntimeSettings.objects.filter(pk=RuntimeSettings.ONE).first()
    if row is None:  # smartw has not changed anything yet: its factory state
        return FreeMode(False, RuntimeSettings.DEFAULT_FREE_MODE_ID_TAG)
    return FreeMode(row.free_mode, row.free_mode_id_tag)


async def current() -> FreeMode | None:
    """smartw's present settings; None when the database cannot be read (logged)."""
    try:
        return await db(_row)
    except DatabaseError as error:
        log.error("station settings cannot be read: %s", error)
        return None


async def change(bus: Bus, key: keys.ConfigKey, value: Any) -> bool:
    """Ask smartw to apply a checked value of a vendor key; True once it has kept it."""
    if key is keys.STATION_FREE_MODE:
        request = FreeModeRequest(enabled=value)
    elif key is keys.STATION_FREE_MODE_ID_TAG:  # the switch stays as smartw has it
        present = await current()
        if present is None:
            return False
        request = FreeModeRequest(enabled=present.enabled, id_tag=value)
    else:
        raise ValueError(f"{key.name} is not a vendor key of smartw's")
    try:
        result = await bus.request(contract.FREE_MODE, request, timeout_s=SMARTW_ANSWER_S)
    except (BusRequestError, RedisError) as error:
        log.warning("ChangeConfiguration %s: smartw did not apply it (%s)", key.name, error)
        return False
    if not result.accepted:
        log.warning("ChangeConfiguration %s: smartw refused it (%s)", key.name, result.reason)
    return result.accepted
