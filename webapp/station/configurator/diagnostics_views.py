"""Diagnostics: diag's latest periodic report, and a self-test run now (of the whole station or
of one subject) whose report is shown in its place. The diagnostics archive is the jobs page's
(admin_jobs); this page links to it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from bus import Bus, contract
from bus.messages import DiagReport
from webapp.station import actions
from webapp.station.bus_state import station_config
from webapp.station.configurator import access, station_now
from webapp.station.configurator.dashboard_data import meter_periods
from webapp.station.configurator.forms import SelfTestForm

IO_MODULE_SUBJECT = "io_module"


async def _latest_report(bus: Bus) -> DiagReport | None:
    return await station_now.read_key(bus, contract.DIAG)


def _subjects(latest: DiagReport | None) -> list[str]:
    """The configured devices, then whatever else diag checks (its services), without repeats."""
    subjects = [name for name, _ in meter_periods(station_config())] + [IO_MODULE_SUBJECT]
    seen = set(subjects)
    for check in latest.checks if latest else ():
        if check.subject not in seen:
            seen.add(check.subject)
            subjects.append(check.subject)
    return subjects


@access.page(post=True)
def diagnostics(request: HttpRequest) -> HttpResponse:
    latest = access.run(station_now.read, _latest_report)
    form = SelfTestForm(request.POST if request.method == "POST" else None, subjects=_subjects(latest))
    outcome, report = None, latest
    if request.method == "POST" and form.is_valid():
        subject = form.cleaned_data["subject"] or None
        outcome, report = access.run(actions.run_self_test, access.actor(request), subject)
    if not access.can_operate(request):
        form.fields["subject"].disabled = True
    return TemplateResponse(request, "station/configurator/diagnostics.html", access.context(
        request, "Diagnostics", form=form, outcome=outcome, report=report, fresh=outcome is not None))
