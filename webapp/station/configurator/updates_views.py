"""The Updates page: over-the-air updates as the station works through them, what is installed,
and the two operator actions, "Update from URL" (ocpp16 takes it like a CSMS UpdateFirmware, so
the CSMS hears every step) and "Flash controllers again" from an installed bundle (an
UPDATE_CONTROLLERS job). Each form posts to its own URL; a form with errors comes back on the
page with nothing sent, one that went through redirects back with the answer as a message."""

from __future__ import annotations

from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from webapp.station import actions
from webapp.station.configurator import access, station_now, updates_data
from webapp.station.configurator.updates_forms import FlashForm, UpdateFromUrlForm

TEMPLATE = "station/configurator/updates.html"


def _render(request: HttpRequest, **bound: Form) -> HttpResponse:
    bundles = updates_data.installed_bundles()
    forms: dict[str, Form] = {"url_form": UpdateFromUrlForm(), "flash_form": FlashForm(bundles=bundles),
                              **bound}
    if not access.can_operate(request):
        for form in forms.values():
            for field in form.fields.values():
                field.disabled = True
    controllers = access.run(station_now.read, updates_data.controller_firmware)
    return TemplateResponse(request, TEMPLATE, access.context(
        request, "Updates", **forms, updates=updates_data.updates(),
        installed=updates_data.installed_versions(), install_files=updates_data.install_files(),
        bundles=bundles, controllers=controllers or [], bus_down=controllers is None))


@access.page(post=False)
def updates(request: HttpRequest) -> HttpResponse:
    return _render(request)


@access.page(post=True)
def update_from_url(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return redirect("configurator:updates")
    form = UpdateFromUrlForm(request.POST)
    if not form.is_valid():
        return _render(request, url_form=form)
    data = form.cleaned_data
    try:
        outcome = access.run(actions.update_firmware, access.actor(request), data["location"],
                             data["attempts"], data["retry_interval_s"])
    except actions.InvalidInput as error:
        form.add_error("location", str(error))
        return _render(request, url_form=form)
    access.report(request, "Update from URL", outcome)
    return redirect("configurator:updates")


@access.page(post=True)
def flash_controllers(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return redirect("configurator:updates")
    form = FlashForm(request.POST, bundles=updates_data.installed_bundles())
    if not form.is_valid():
        return _render(request, flash_form=form)
    try:
        outcome = access.run(actions.flash_controllers, access.actor(request), form.cleaned_data["bundle"])
    except actions.InvalidInput as error:
        form.add_error("bundle", str(error))
        return _render(request, flash_form=form)
    access.report(request, "Flash controllers", outcome)
    return redirect("configurator:updates")
