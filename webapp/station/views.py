"""Plain Django views of the station app."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe


@require_safe  # GET/HEAD only: the page changes nothing (the crawler test checks every URL)
def hmi(request: HttpRequest) -> HttpResponse:
    """The kiosk page: no login; all live data comes over the /ws/hmi/ websocket, so the page
    itself is static and can be reloaded at any time."""
    return render(request, "station/hmi.html")
