"""The configurator pages' forms. They only check the shape of what was typed; the rules of
the thing changed are its owner's (operator_settings.clean, smartw, ocpp16, actions), whose
answer the page shows."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django import forms
from django.core.validators import RegexValidator

from webapp.station import operator_settings
from webapp.station.actions import ID_TAG_MAX
from webapp.station.operator_models import AuditEntry

STATION_TARGET = 0  # OCPP connector 0: the whole station
CHARGE_POINT_ID_MAX = 48  # OCPP chargeBoxIdentity, CiString48
AUTHORIZATION_KEY_MAX = 40  # OCPP security whitepaper: 16..40 bytes, as hex
SECURITY_PROFILES = ((0, "0: no security"), (1, "1: Basic auth over ws://"), (2, "2: TLS + Basic auth"),
                     (3, "3: TLS with client certificate"))
WS_URL = RegexValidator(r"^wss?://[^\s/?#]+(/\S*)?$", "A ws:// or wss:// URL.")


class OperatorSettingsForm(forms.Form):
    """Every operator_settings declaration as a field (label, help and type from SETTINGS)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for spec in operator_settings.SETTINGS:
            field = spec.field()
            field.label, field.help_text = spec.label, spec.help
            self.fields[spec.name] = field

    def groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        """The fields under their declared group, in declaration order."""
        grouped: dict[str, list[forms.BoundField]] = defaultdict(list)
        for spec in operator_settings.SETTINGS:
            grouped[spec.group].append(self[spec.name])
        return list(grouped.items())


class FreeModeForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="Free mode on",
                                 help_text="A plugged-in EV starts charging at once, without a card.")
    id_tag = forms.CharField(required=False, max_length=ID_TAG_MAX, label="idTag of free sessions",
                             help_text="Empty: keep the station's configured idTag.")


class AvailabilityForm(forms.Form):
    """One target (the station or one connector) and the state asked for; each target's row on
    the page is its own small form with one button per state."""

    connector_id = forms.TypedChoiceField(coerce=int, choices=())
    operative = forms.TypedChoiceField(choices=(("operative", "Operative"), ("inoperative", "Inoperative")),
                                       coerce=lambda value: value == "operative")

    def __init__(self, *args: Any, connector_ids: tuple[int, ...], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(STATION_TARGET, "Station")] + [(cid, f"Connector {cid}") for cid in connector_ids]
        self.fields["connector_id"].choices = choices  # type: ignore[attr-defined]


class OcppForm(forms.Form):
    """The CSMS link: each changed field goes to ocpp16 as one OCPP_CONFIGURE, in KEYS order (a
    new AuthorizationKey before a higher SecurityProfile that needs it)."""

    KEYS = (("csms_url", "CsmsUrl"), ("charge_point_id", "ChargePointId"),
            ("authorization_key", "AuthorizationKey"), ("security_profile", "SecurityProfile"))

    csms_url = forms.CharField(label="CSMS URL", max_length=500, validators=[WS_URL],
                               help_text="The central system's base URL; the charge point id is appended.")
    charge_point_id = forms.CharField(label="Charge point id", max_length=CHARGE_POINT_ID_MAX)
    security_profile = forms.TypedChoiceField(label="Security profile", coerce=int, choices=SECURITY_PROFILES,
                                              help_text="OCPP allows raising it only.")
    authorization_key = forms.CharField(
        label="Authorization key", required=False, max_length=AUTHORIZATION_KEY_MAX, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The Basic-auth password (hex). Never shown; empty: unchanged.")

    def changes(self) -> list[tuple[str, str]]:
        """(OCPP key, new value as text) of each field changed, in the order they must be applied."""
        changed = set(self.changed_data)
        return [(key, str(self.cleaned_data[name])) for name, key in self.KEYS
                if name in changed and self.cleaned_data[name] not in ("", None)]


class ClockForm(forms.Form):
    new_time = forms.DateTimeField(
        label="New time (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
        help_text="Station time is UTC; 'Use browser time' fills in this browser's clock.")


class SelfTestForm(forms.Form):
    subject = forms.ChoiceField(label="Subject", required=False, choices=())

    def __init__(self, *args: Any, subjects: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["subject"].choices = [("", "Whole station")] + [(s, s) for s in subjects]  # type: ignore[attr-defined]


class ConfirmForm(forms.Form):
    confirm = forms.BooleanField(label="Yes, I am sure",
                                 error_messages={"required": "Tick the box to confirm."})


class AuditFilterForm(forms.Form):
    username = forms.CharField(required=False, max_length=150)
    action = forms.CharField(required=False, max_length=64)
    source = forms.ChoiceField(required=False, choices=[("", "any"), *AuditEntry.Source.choices])
