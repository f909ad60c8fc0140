"""Pages about the station computer itself: its clock, and stopping or restarting the station
software. Restart and shutdown are behind a confirmation (a POST with the confirm box ticked):
one click on a link never stops the station."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from webapp.station import actions
from webapp.station.configurator import access
from webapp.station.configurator.forms import ClockForm, ConfirmForm

POWER_ACTIONS = {  # url kind -> (title, what the operator is told, action)
    "restart": ("Restart the station software",
                "Every station service stops and starts again (sessions in progress are ended with "
                "reason Reboot); the configurator is back within seconds.", actions.restart_software),
    "shutdown": ("Shut down the station software",
                 "Every station service stops, the configurator included, and stays stopped until the "
                 "station computer is restarted or the software is started by hand. Charging stops.",
                 actions.shutdown_software),
}


def _station_times() -> tuple[datetime, datetime]:
    """(UTC, the computer's local time with its zone)."""
    local_now = datetime.now().astimezone()
    return local_now.astimezone(UTC), local_now


@access.page(post=True)
def time_page(request: HttpRequest) -> HttpResponse:
    form = ClockForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            outcome = access.run(actions.set_clock, access.actor(request), form.cleaned_data["new_time"])
        except actions.InvalidInput as error:
            form.add_error("new_time", str(error))
        else:
            access.report(request, "Set clock", outcome)
            return redirect("configurator:time")
    if not access.can_operate(request):
        form.fields["new_time"].disabled = True
    utc_now, local_now = _station_times()
    return TemplateResponse(request, "station/configurator/time.html", access.context(
        request, "Station time", form=form, utc_text=f"{utc_now:%Y-%m-%d %H:%M:%S}",
        utc_epoch_ms=int(utc_now.timestamp() * 1000),
        local_text=f"{local_now:%Y-%m-%d %H:%M:%S} {local_now.tzname()} (UTC{local_now:%z})",
        clock_command_set=bool(os.environ.get(actions.SET_CLOCK_ENV, "").strip()),
        clock_env=actions.SET_CLOCK_ENV))


@access.page(post=False)
def power(request: HttpRequest) -> HttpResponse:
    """The two buttons, each leading to its confirmation page."""
    kinds = [(kind, title) for kind, (title, _, _) in POWER_ACTIONS.items()]
    return TemplateResponse(request, "station/configurator/power.html",
                            access.context(request, "Restart or shut down", kinds=kinds))


@access.page(post=True)
def confirm_power(request: HttpRequest, kind: str) -> HttpResponse:
    """GET: what will happen and the confirm box; POST with the box ticked: do it and show the
    answer (on the same page: the configurator may be gone a moment later)."""
    title, explanation, action = POWER_ACTIONS[kind]
    form = ConfirmForm(request.POST if request.method == "POST" else None)
    outcome = None
    if request.method == "POST" and form.is_valid():
        outcome = access.run(action, access.actor(request))
    return TemplateResponse(request, "station/configurator/confirm.html", access.context(
        request, title, kind=kind, explanation=explanation, form=form, outcome=outcome))
