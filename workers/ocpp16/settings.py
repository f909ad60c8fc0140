"""Typed settings of the ocpp16 service, declared once (STYLE habit 12).

Where each value comes from today: the CSMS URL and charge point id from the environment
contract (webapp.env), the connectors from station.toml, and the OCPP behaviour knobs from
`OCPP_*` environment variables named after the OCPP 1.6 configuration keys they stand in for.
Those variables only give the defaults of their configuration keys (config_keys.py): a value
the CSMS set with ChangeConfiguration is persisted and wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

CHARGE_POINT_VENDOR = "station-controller"  # BootNotification chargePointVendor (<= 20 chars)
MAX_MODEL_CHARS = 20  # BootNotification chargePointModel limit (OCPP 1.6 schema)


class SettingsError(ValueError):
    """An OCPP_* environment variable has a value the service cannot use."""


@dataclass(frozen=True)
class Knob:
    """One numeric setting: env variable, default, bounds, and the OCPP key it stands in for."""

    env: str
    default: float
    minimum: float
    maximum: float
    ocpp_key: str

    def given(self, environ: Mapping[str, str]) -> str | None:
        """The variable's text when it is set and valid (it overrides the key's default)."""
        text = environ.get(self.env)
        if text is None or text.strip() == "":
            return None
        self.read(environ)
        return text.strip()

    def read(self, environ: Mapping[str, str]) -> float:
        text = environ.get(self.env)
        if text is None or text.strip() == "":
            return self.default
        try:
            value = float(text)
        except ValueError:
            raise SettingsError(f"{self.env} must be a number, got {text!r}") from None
        if not self.minimum <= value <= self.maximum:
            raise SettingsError(f"{self.env} must be between {self.minimum:g} and {self.maximum:g}, "
                                f"got {text!r}")
        return value


METER_VALUE_SAMPLE_INTERVAL = Knob("OCPP_METER_VALUE_SAMPLE_INTERVAL", 10, 0, 86_400,
                                   "MeterValueSampleInterval")
TRANSACTION_MESSAGE_ATTEMPTS = Knob("OCPP_TRANSACTION_MESSAGE_ATTEMPTS", 3, 1, 100,
                                    "TransactionMessageAttempts")
TRANSACTION_MESSAGE_RETRY_INTERVAL = Knob("OCPP_TRANSACTION_MESSAGE_RETRY_INTERVAL", 60, 0, 86_400,
                                          "TransactionMessageRetryInterval")
MESSAGE_TIMEOUT = Knob("OCPP_MESSAGE_TIMEOUT", 30, 1, 600, "MessageTimeout")
WEBSOCKET_PING_INTERVAL = Knob("OCPP_WEBSOCKET_PING_INTERVAL", 60, 0, 86_400, "WebSocketPingInterval")
RECONNECT_MAX = Knob("OCPP_RECONNECT_MAX", 60, 0.1, 3_600, "")  # transport back-off cap, s
KNOBS = (METER_VALUE_SAMPLE_INTERVAL, TRANSACTION_MESSAGE_ATTEMPTS, TRANSACTION_MESSAGE_RETRY_INTERVAL,
         MESSAGE_TIMEOUT, WEBSOCKET_PING_INTERVAL, RECONNECT_MAX)


def _config_defaults(env: Mapping[str, str], connectors: int) -> dict[str, str]:
    """Defaults of configuration keys that this station or the environment decide; a value
    the CSMS stored later wins over them (config_keys.ConfigurationStore)."""
    defaults = {"NumberOfConnectors": str(connectors)}
    for knob in KNOBS:
        text = knob.given(env)
        if knob.ocpp_key and text is not None:
            defaults[knob.ocpp_key] = text
    return defaults


@dataclass(frozen=True)
class Ocpp16Settings:
    csms_url: str
    charge_point_id: str
    connector_ids: tuple[int, ...]
    charge_point_model: str
    meter_value_sample_interval_s: float  # 0 = no periodic MeterValues
    transaction_message_attempts: int
    transaction_message_retry_interval_s: float  # multiplied by the attempts made so far
    message_timeout_s: float  # wait for a CALLRESULT
    websocket_ping_interval_s: float | None  # None = no client pings
    reconnect_max_s: float
    charge_point_vendor: str = CHARGE_POINT_VENDOR
    config_defaults: Mapping[str, str] = field(default_factory=dict)  # key -> default from the environment

    @classmethod
    def build(cls, *, csms_url: str, charge_point_id: str, connector_ids: tuple[int, ...],
              station_name: str, environ: Mapping[str, str] | None = None) -> Ocpp16Settings:
        env = os.environ if environ is None else environ
        if not charge_point_id or len(charge_point_id) > 48:
            raise SettingsError(f"OCPP_CHARGE_POINT_ID must be 1..48 characters, got {charge_point_id!r}")
        ping = WEBSOCKET_PING_INTERVAL.read(env)
        return cls(
            csms_url=csms_url.rstrip("/"),
            charge_point_id=charge_point_id,
            connector_ids=tuple(sorted(connector_ids)),
            charge_point_model=station_name[:MAX_MODEL_CHARS] or "station",
            meter_value_sample_interval_s=METER_VALUE_SAMPLE_INTERVAL.read(env),
            transaction_message_attempts=int(TRANSACTION_MESSAGE_ATTEMPTS.read(env)),
            transaction_message_retry_interval_s=TRANSACTION_MESSAGE_RETRY_INTERVAL.read(env),
            message_timeout_s=MESSAGE_TIMEOUT.read(env),
            websocket_ping_interval_s=ping if ping > 0 else None,
            reconnect_max_s=RECONNECT_MAX.read(env),
            config_defaults=_config_defaults(env, len(connector_ids)),
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
                         station_name=station.station.name)
