"""The dashboard: the station's live state, rendered once and then refreshed by the page's
script from `dashboard_json` every POLL_S (same login rule: no data for anyone logged out)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from webapp.station.configurator import access, station_now
from webapp.station.configurator.dashboard_data import POLL_S, Dashboard, read_dashboard, unreachable


def _dashboard() -> Dashboard:
    return access.run(station_now.read, read_dashboard) or unreachable()


@access.page(post=False)
def dashboard(request: HttpRequest) -> HttpResponse:
    data = _dashboard()
    return TemplateResponse(request, "station/configurator/dashboard.html", access.context(
        request, "Station dashboard", dashboard=data, poll_ms=int(POLL_S * 1000)))


@access.page(post=False)
def dashboard_json(request: HttpRequest) -> HttpResponse:
    return JsonResponse(_dashboard().model_dump(mode="json"))
