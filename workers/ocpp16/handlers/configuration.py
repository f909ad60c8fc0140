"""GetConfiguration / ChangeConfiguration (OCPP 1.6 §5.3, §5.8; config_keys.py, vendor_keys.py).

GetConfiguration: no or an empty key list gives every readable key; each key asked is answered
once (names are case-insensitive), unknown and write-only ones go to `unknownKey`. More keys
than GetConfigurationMaxKeys in one request: the spec only says the charge point MAY limit the
number and the conf has no way to say "not answered", so a partial answer would pass for a
complete one; the whole request gets CALLERROR OccurenceConstraintViolation (1.6 spelling), as
OCPP 2.0.1 does for GetVariables. The full list always fits (a test keeps the key count below
the limit). Keys smartw holds are read from its row at that moment; when it cannot be read
they are left out (in `unknownKey` when asked by name), never reported stale.

ChangeConfiguration: NotSupported for an unknown key (OCTT TC_040_1); Rejected for a read-only
key, a value the key's rules or guards refuse (TC_040_2), or a change that cannot be kept (the
database refuses it, smartw does not apply a vendor key); otherwise persisted, then applied
(listeners follow it at once), and Accepted, or RebootRequired where the key says so.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError
from ocpp.exceptions import OccurenceConstraintViolationError
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.datatypes import KeyValue
from ocpp.v16.enums import Action, ConfigurationStatus

from workers.ocpp16 import config_keys as keys
from workers.ocpp16 import vendor_keys
from workers.ocpp16.config_keys import Access, ConfigKey, Holder
from workers.ocpp16.handlers.base import HandlerBase
from workers.ocpp16.persisted import change_configuration

log = logging.getLogger(__name__)

KEPT = (ConfigurationStatus.accepted, ConfigurationStatus.reboot_required)


class ConfigurationHandlers(HandlerBase):
    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None,
                                   **_: Any) -> call_result.GetConfiguration:
        config = self.ctx.config
        names = list(dict.fromkeys(key or ()))
        limit = config.get(keys.GET_CONFIGURATION_MAX_KEYS)
        if len(names) > limit:
            log.warning("GetConfiguration for %d keys refused: at most %d", len(names), limit)
            raise OccurenceConstraintViolationError(
                description=f"at most {limit} keys per request (GetConfigurationMaxKeys)")
        found, unknown = config.readable(names)
        held_by_smartw = await self._smartw_values(found)
        answered: list[KeyValue] = []
        for found_key in found:
            if found_key.holder is Holder.OCPP16:
                value = config.text(found_key)
            elif (value := held_by_smartw.get(found_key.name)) is None:
                if names:
                    unknown.append(found_key.name)
                continue
            answered.append(KeyValue(key=found_key.name, readonly=found_key.access is Access.READ,
                                     value=value))
        if unknown:
            log.info("GetConfiguration: unknown keys %s", ", ".join(f"{name:.50}" for name in unknown))
        return call_result.GetConfiguration(configuration_key=answered or None, unknown_key=unknown or None)

    @staticmethod
    async def _smartw_values(found: list[ConfigKey]) -> dict[str, str]:
        if not any(found_key.holder is Holder.SMARTW for found_key in found):
            return {}
        free_mode = await vendor_keys.current()
        return {} if free_mode is None else free_mode.values()

    @on(Action.change_configuration)
    async def on_change_configuration(self, key: str, value: str,
                                      **_: Any) -> call_result.ChangeConfiguration:
        status, config_key, typed = self.ctx.config.check_change(key, value)
        if status in KEPT and config_key is not None and not await self._keep(config_key, typed):
            status = ConfigurationStatus.rejected
        return call_result.ChangeConfiguration(status=status)

    async def _keep(self, config_key: ConfigKey, value: Any) -> bool:
        if config_key.holder is Holder.SMARTW:
            kept = await vendor_keys.change(self.ctx.bus, config_key, value)
            if kept:
                log.info("configuration %s = %s (kept by smartw)", config_key.name, config_key.format(value))
            return kept
        try:
            await change_configuration(self.ctx.config, config_key, value)
        except DatabaseError as error:
            log.error("ChangeConfiguration %s could not be saved (Rejected): %s", config_key.name, error)
            return False
        return True
