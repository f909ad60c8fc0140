"""The Settings page: web's own operator settings, free mode, availability and the CSMS link.

One page, four forms, each posting to its own URL; a form with errors comes back on the page
with its errors and nothing done, a form that went through redirects back with the station's
answer as a message. What is saved where is the actions module's business: these views only
turn form fields into actions calls.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from webapp.station import actions, operator_settings
from webapp.station.bus_state import station_config
from webapp.station.configurator import access, station_now
from webapp.station.configurator.forms import (
    STATION_TARGET,
    AvailabilityForm,
    FreeModeForm,
    OcppForm,
    OperatorSettingsForm,
)
from webapp.station.configurator.station_now import StationNow
from webapp.station.hmi_messages import OcppView
from webapp.station.models import OcppSetting, OcppState, RuntimeSettings

OCPP_DEFAULT_SECURITY_PROFILE = 0
OPERATOR_ADDRESS_STATE = "operator_address"  # ocpp16's OcppState row (workers/ocpp16/operator_config.py)
TEMPLATE = "station/configurator/settings.html"


def _connector_ids() -> tuple[int, ...]:
    return tuple(c.id for c in station_config().connectors)


def _ocpp_initial(present: StationNow | None) -> dict[str, Any]:
    """What ocpp16 uses now: the URL and id on the bus (OcppLink), else what the operator set
    before (ocpp16's OcppState row, while ocpp16 is down), else the environment; the profile
    from its key's row."""
    address = OcppState.objects.filter(name=OPERATOR_ADDRESS_STATE).values_list("value", flat=True).first()
    address = address if isinstance(address, dict) else {}
    profile = OcppSetting.objects.filter(key="SecurityProfile").values_list("value", flat=True).first()
    link = present.link if present else None
    env = settings.STATION_ENV
    return {"csms_url": OcppView.from_link(link).csms_url if link else address.get("csms_url", env.csms_url),
            "charge_point_id": (link.charge_point_id if link and link.charge_point_id
                                else address.get("charge_point_id", env.charge_point_id)),
            "security_profile": profile if profile is not None else OCPP_DEFAULT_SECURITY_PROFILE}


def _availability_rows(present: StationNow | None) -> list[dict[str, Any]]:
    """One row per target: the station (id 0), then each connector, with its state on the bus."""
    station = present.station if present else None
    rows = [{"id": STATION_TARGET, "label": "Station",
             "operative": station.operative if station else None,
             "status": station.status.value if station else station_now.NO_DATA}]
    for cid in _connector_ids():
        state = present.connectors.get(cid) if present else None
        rows.append({"id": cid, "label": f"Connector {cid}", "operative": state.operative if state else None,
                     "status": state.status.value if state else station_now.NO_DATA})
    return rows


def _render(request: HttpRequest, **bound: Form) -> HttpResponse:
    """The page with the current values; `bound` replaces a form by the one just posted."""
    present = access.run(station_now.read, station_now.read_now)
    station = present.station if present else None
    forms: dict[str, Form] = {
        "settings_form": OperatorSettingsForm(initial=operator_settings.load().model_dump()),
        "free_mode_form": FreeModeForm(initial={"enabled": station.free_mode if station else False}),
        "ocpp_form": OcppForm(initial=_ocpp_initial(present)),
        **bound,
    }
    if not access.can_operate(request):
        for form in forms.values():
            for field in form.fields.values():
                field.disabled = True
    runtime = RuntimeSettings.objects.filter(pk=RuntimeSettings.ONE).first()
    return TemplateResponse(request, TEMPLATE, access.context(
        request, "Station settings", **forms, bus_down=present is None,
        free_mode_id_tag=runtime.free_mode_id_tag if runtime else RuntimeSettings.DEFAULT_FREE_MODE_ID_TAG,
        availability=_availability_rows(present)))


@access.page(post=True)
def settings_page(request: HttpRequest) -> HttpResponse:
    """GET: every form with the current values; POST: save web's own settings."""
    if request.method != "POST":
        return _render(request)
    form = OperatorSettingsForm(request.POST, initial=operator_settings.load().model_dump())
    if not form.is_valid():
        return _render(request, settings_form=form)
    actor = access.actor(request)
    for name in form.changed_data:
        try:
            outcome = access.run(actions.change_setting, actor, name, form.cleaned_data[name])
        except actions.InvalidInput as error:
            form.add_error(name, str(error))
            return _render(request, settings_form=form)
        access.report(request, operator_settings.BY_NAME[name].label, outcome)
    if not form.changed_data:
        messages.info(request, "Nothing changed.")
    return redirect("configurator:settings")


@access.page(post=True)
def free_mode(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return redirect("configurator:settings")
    form = FreeModeForm(request.POST)
    if not form.is_valid():
        return _render(request, free_mode_form=form)
    enabled, id_tag = form.cleaned_data["enabled"], form.cleaned_data["id_tag"] or None
    try:
        outcome = access.run(actions.set_free_mode, access.actor(request), enabled, id_tag)
    except actions.InvalidInput as error:
        form.add_error("id_tag", str(error))
        return _render(request, free_mode_form=form)
    access.report(request, f"Free mode {'on' if enabled else 'off'}", outcome)
    return redirect("configurator:settings")


@access.page(post=True)
def availability(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return redirect("configurator:settings")
    form = AvailabilityForm(request.POST, connector_ids=_connector_ids())
    if not form.is_valid():
        messages.error(request, f"Availability not changed: {form.errors.as_text()}")
        return redirect("configurator:settings")
    target, operative = form.cleaned_data["connector_id"], form.cleaned_data["operative"]
    try:
        outcome = access.run(actions.set_availability, access.actor(request), target, operative)
    except actions.InvalidInput as error:
        messages.error(request, f"Availability not changed: {error}")
        return redirect("configurator:settings")
    where = "Station" if target == STATION_TARGET else f"Connector {target}"
    access.report(request, f"{where} {'operative' if operative else 'inoperative'}", outcome)
    return redirect("configurator:settings")


@access.page(post=True)
def ocpp(request: HttpRequest) -> HttpResponse:
    """Each changed key goes to ocpp16 in turn; the first one it does not accept stops the rest
    (a higher SecurityProfile after a refused AuthorizationKey would only lock the station out)."""
    if request.method != "POST":
        return redirect("configurator:settings")
    present = access.run(station_now.read, station_now.read_now)
    form = OcppForm(request.POST, initial=_ocpp_initial(present))
    if not form.is_valid():
        return _render(request, ocpp_form=form)
    changes = form.changes()
    actor = access.actor(request)
    for done, (key, value) in enumerate(changes, start=1):
        try:
            outcome = access.run(actions.configure_ocpp, actor, key, value)
        except actions.InvalidInput as error:
            messages.error(request, str(error))
            break
        access.report(request, key, outcome)
        if not outcome.done:
            if done < len(changes):
                messages.warning(request, "Not sent: " + ", ".join(k for k, _ in changes[done:]))
            break
    if not changes:
        messages.info(request, "Nothing changed.")
    return redirect("configurator:settings")
