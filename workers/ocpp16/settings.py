"""Typed settings of the ocpp16 service, declared once (STYLE habit 12).

Where each value comes from: the CSMS URL and charge point id from the environment contract
(webapp.env), the connectors from station.toml, and the transport's back-off cap from
`OCPP_RECONNECT_MAX`. Everything OCPP itself defines is a configuration key (config_keys.py);
the `OCPP_*` variables named after some of them only change those keys' defaults (tools and
tests use them), checked by the key's own rules. A value the CSMS set with ChangeConfiguration
is persisted and wins over them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from workers.ocpp16 import config_keys as keys
from workers.ocpp16.config_keys import ConfigKey, InvalidValue

CHARGE_POINT_VENDOR = "station-controller"  # BootNotification chargePointVendor (<= 20 chars)
MAX_MODEL_CHARS = 20  # BootNotification chargePointModel limit (OCPP 1.6 schema)
RECONNECT_MAX_ENV = "OCPP_RECONNECT_MAX"
RECONNECT_MAX_DEFAULT_S = 60.0
RECONNECT_MAX_BOUNDS_S = (0.1, 3_600.0)

# Environment variable -> the configuration key whose default it sets.
KEY_DEFAULTS_FROM_ENV: Mapping[str, ConfigKey] = {
    "OCPP_METER_VALUE_SAMPLE_INTERVAL": keys.METER_VALUE_SAMPLE_INTERVAL,
    "OCPP_TRANSACTION_MESSAGE_ATTEMPTS": keys.TRANSACTION_MESSAGE_ATTEMPTS,
    "OCPP_TRANSACTION_MESSAGE_RETRY_INTERVAL": keys.TRANSACTION_MESSAGE_RETRY_INTERVAL,
    "OCPP_MESSAGE_TIMEOUT": keys.MESSAGE_TIMEOUT,
    "OCPP_WEBSOCKET_PING_INTERVAL": keys.WEB_SOCKET_PING_INTERVAL,
}


class SettingsError(ValueError):
    """An OCPP_* environment variable has a value the service cannot use."""


def _given(env: Mapping[str, str], variable: str) -> str | None:
    text = env.get(variable, "").strip()
    return text or None


def _config_defaults(env: Mapping[str, str], connectors: int) -> dict[str, str]:
    """Defaults of configuration keys that this station or the environment decide."""
    defaults = {keys.NUMBER_OF_CONNECTORS.name: str(connectors)}
    for variable, key in KEY_DEFAULTS_FROM_ENV.items():
        text = _given(env, variable)
        if text is None:
            continue
        try:
            key.parse(text)
        except InvalidValue as error:
            raise SettingsError(f"{variable} {error}") from None
        defaults[key.name] = text
    return defaults


def _reconnect_max_s(env: Mapping[str, str]) -> float:
    text = _given(env, RECONNECT_MAX_ENV)
    if text is None:
        return RECONNECT_MAX_DEFAULT_S
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{RECONNECT_MAX_ENV} must be a number, got {text!r}") from None
    low, high = RECONNECT_MAX_BOUNDS_S
    if not low <= value <= high:
        raise SettingsError(f"{RECONNECT_MAX_ENV} must be between {low:g} and {high:g}, got {text!r}")
    return value


@dataclass(frozen=True)
class Ocpp16Settings:
    csms_url: str
    charge_point_id: str
    connector_ids: tuple[int, ...]
    charge_point_model: str
    reconnect_max_s: float  # cap of the reconnect back-off
    charge_point_vendor: str = CHARGE_POINT_VENDOR
    config_defaults: Mapping[str, str] = field(default_factory=dict)  # key -> default from here
    lock_connector_ids: tuple[int, ...] = ()  # Type 2 sockets with a cable lock (the rest: fixed cables)

    @classmethod
    def build(cls, *, csms_url: str, charge_point_id: str, connector_ids: tuple[int, ...],
              station_name: str, environ: Mapping[str, str] | None = None,
              lock_connector_ids: tuple[int, ...] = ()) -> Ocpp16Settings:
        env = os.environ if environ is None else environ
        if not charge_point_id or len(charge_point_id) > 48:
            raise SettingsError(f"OCPP_CHARGE_POINT_ID must be 1..48 characters, got {charge_point_id!r}")
        return cls(
            csms_url=csms_url.rstrip("/"),
            charge_point_id=charge_point_id,
            connector_ids=tuple(sorted(connector_ids)),
            charge_point_model=station_name[:MAX_MODEL_CHARS] or "station",
            reconnect_max_s=_reconnect_max_s(env),
            config_defaults=_config_defaults(env, len(connector_ids)),
            lock_connector_ids=tuple(sorted(lock_connector_ids)),
        )

    @classmethod
    def from_django(cls) -> Ocpp16Settings:
        """Settings of the running station (Django settings and station.toml must be ready)."""
        from django.conf import settings

        from workers.common.station_config import load_from_settings

        station = load_from_settings()
        env = settings.STATION_ENV
        return cls.build(csms_url=env.csms_url, charge_point_id=env.charge_point_id,
                         connector_ids=tuple(c.id for c in station.connectors),
                         station_name=station.station.name,
                         lock_connector_ids=tuple(c.id for c in station.connectors if c.has_lock))
