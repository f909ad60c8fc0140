"""The operator settings that web owns, each declared once (STYLE habit 12): name, label,
default, form field and help drive the configurator's form, the defaults and the typed
accessor `OperatorSettings`. Stored in StationSetting (a row only once changed), published on
the bus by webapp/station/settings_publisher.py.

Settings that another service owns are changed through that service's command, never here:
free mode and availability (smartw), the CSMS URL, charge point id and security profile
(ocpp16, contract.OCPP_CONFIGURE)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from pydantic import BaseModel, ConfigDict

from bus.messages import ChargingLimit, HmiSettings, LimitSource, QrLink
from webapp.station.operator_models import StationSetting

STATION_ID = 0
MAX_STATION_KW = 10_000.0  # no station draws more; a bigger number is a typo


@dataclass(frozen=True)
class SettingSpec:
    name: str
    label: str
    default: Any
    field: Callable[[], forms.Field]
    help: str
    group: str


def _url() -> forms.Field:
    return forms.URLField(required=False, max_length=500, assume_scheme="https")


def _connector_link() -> forms.Field:
    return forms.CharField(required=False, max_length=500)


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("hmi_language", "HMI language", "en",
                lambda: forms.ChoiceField(choices=[("en", "English"), ("ru", "Русский")]),
                "The kiosk's language after start and after each session; drivers can switch.", "HMI"),
    SettingSpec("hmi_stop_needs_card", "Stop needs the card", True,
                lambda: forms.BooleanField(required=False),
                "Stop on the HMI asks for the card that started the session.", "HMI"),
    SettingSpec("qr_feedback_url", "Feedback link", "", _url, "QR code 'Feedback' on the HMI; empty: none.",
                "QR codes"),
    SettingSpec("qr_app_android_url", "Android app link", "", _url, "QR code of the Android app.",
                "QR codes"),
    SettingSpec("qr_app_ios_url", "iOS app link", "", _url, "QR code of the iOS app.", "QR codes"),
    SettingSpec("qr_connector_link", "Connector deep link", "", _connector_link,
                "Per-connector QR code; {connector_id} and {charge_point_id} are filled in "
                "(e.g. https://app.example/start/{charge_point_id}/{connector_id}); empty: none.",
                "QR codes"),
    SettingSpec("station_power_limit_kw", "Station power limit, kW", None,
                lambda: forms.FloatField(required=False, min_value=0, max_value=MAX_STATION_KW),
                "The operator's ceiling on the whole station's power (kept across restarts); empty: "
                "only station.toml's limit.", "Power"),
)
BY_NAME: dict[str, SettingSpec] = {spec.name: spec for spec in SETTINGS}
QR_KEYS = (("qr_feedback_url", "feedback"), ("qr_app_android_url", "app_android"),
           ("qr_app_ios_url", "app_ios"))  # (setting, QrLink.key) in the HMI's order


class OperatorSettings(BaseModel):
    """Every operator setting with its current value (typed accessor)."""

    model_config = ConfigDict(frozen=True)

    hmi_language: str
    hmi_stop_needs_card: bool
    qr_feedback_url: str
    qr_app_android_url: str
    qr_app_ios_url: str
    qr_connector_link: str
    station_power_limit_kw: float | None

    def hmi(self) -> HmiSettings:
        links = tuple(QrLink(key=key, url=getattr(self, name))
                      for name, key in QR_KEYS if getattr(self, name))
        return HmiSettings(language=self.hmi_language, qr_links=links,  # type: ignore[arg-type]
                           connector_link=self.qr_connector_link, stop_needs_card=self.hmi_stop_needs_card)

    def station_limit(self) -> ChargingLimit | None:
        if self.station_power_limit_kw is None:
            return None
        return ChargingLimit(connector_id=STATION_ID, limit_w=self.station_power_limit_kw * 1000,
                             source=LimitSource.OPERATOR)


def load() -> OperatorSettings:
    """The current settings: stored values over the declared defaults (sync: call through
    sync_to_async from async code)."""
    values = {spec.name: spec.default for spec in SETTINGS}
    values.update({row.name: row.value for row in StationSetting.objects.filter(name__in=BY_NAME)})
    return OperatorSettings(**values)


def clean(name: str, value: Any) -> Any:
    """The value as the declared field cleans it; forms.ValidationError (with the field's
    message) if it does not fit, KeyError for an unknown name."""
    return BY_NAME[name].field().clean(value)
