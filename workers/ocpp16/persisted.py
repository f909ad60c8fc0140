"""ocpp16's small persisted state: configuration keys (`OcppSetting`) and named state
(`OcppState`), read and written on Django's one sync thread (txqueue.db)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from webapp.station.models import OcppSetting, OcppState
from workers.ocpp16.config_keys import ALL_KEYS, ConfigKey, ConfigurationStore
from workers.ocpp16.txqueue import db


def _stored_settings() -> dict[str, str]:
    return dict(OcppSetting.objects.values_list("key", "value"))


def _save_setting(key: str, value: str) -> None:
    OcppSetting.objects.update_or_create(key=key, defaults={"value": value})


def _state(name: str, default: Any) -> Any:
    row = OcppState.objects.filter(name=name).first()
    return default if row is None else row.value


def _save_state(name: str, value: Any) -> None:
    if value is None:
        OcppState.objects.filter(name=name).delete()
    else:
        OcppState.objects.update_or_create(name=name, defaults={"value": value})


async def load_configuration(defaults: dict[str, str],
                             keys: Iterable[ConfigKey] = ALL_KEYS) -> ConfigurationStore:
    """The store of `keys` with the station's defaults and every value stored by an earlier change."""
    return ConfigurationStore(defaults, await db(_stored_settings), keys)


async def change_configuration(store: ConfigurationStore, key: ConfigKey, value: Any) -> None:
    """Persist a checked value, then apply it (listeners run): a change survives a reboot."""
    await db(_save_setting, key.name, key.format(value))
    store.apply(key, value)


async def read_state(name: str, default: Any = None) -> Any:
    return await db(_state, name, default)


async def write_state(name: str, value: Any) -> None:
    """Store JSON-able `value` under `name`; None deletes it."""
    await db(_save_state, name, value)
