"""Plain Django views of the station app."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def hmi(request: HttpRequest) -> HttpResponse:
    """The kiosk page: no login, live data comes over the /ws/hmi/ websocket."""
    return render(request, "station/hmi.html")
