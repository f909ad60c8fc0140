"""Who may open the configurator's pages, and what every page shares.

Why one module: every page goes through `page()`, so none can forget the login, the role or
CSRF. Anyone without a login (or without staff status) is sent to the admin's login; a staff
user without any permission of the station app gets 403; a POST needs the operator role
(actions.Actor.operator), else 403 before the form is even read. Views are plain sync views
(the admin's `admin_view` wrapper is sync); actions and bus reads are async and run through
`run()` (async_to_sync), which under ASGI hands them to the server's event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed

from webapp.station.actions import OPERATE_PERMISSION, Actor, Outcome
from webapp.station.operator_models import AuditEntry

APP_LABEL = "station"
P = ParamSpec("P")
T = TypeVar("T")
View = Callable[..., HttpResponse]

NAV: tuple[tuple[str, str], ...] = (  # (url name, title): the pages' own menu, in order
    ("configurator:dashboard", "Dashboard"),
    ("configurator:settings", "Settings"),
    ("configurator:time", "Time"),
    ("configurator:diagnostics", "Diagnostics"),
    ("configurator:updates", "Updates"),
    ("configurator:power", "Restart / shut down"),
    ("configurator:audit", "Audit log"),
)


def page(*, post: bool) -> Callable[[View], View]:
    """Login (admin's), a station permission to look, the operator role to POST (`post`: the
    page has forms; else a POST is 405); CSRF and never-cache come with admin_view."""

    def decorate(view: View) -> View:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.has_module_perms(APP_LABEL):
                raise PermissionDenied("no permission to view the station")
            if request.method == "POST":
                actor(request)  # PermissionDenied for a viewer, whatever the page
            allowed = ("GET", "HEAD", "POST") if post else ("GET", "HEAD")
            if request.method not in allowed:
                return HttpResponseNotAllowed(allowed)
            return view(request, *args, **kwargs)

        return admin.site.admin_view(checked)

    return decorate


def actor(request: HttpRequest) -> Actor:
    return Actor.operator(request.user, AuditEntry.Source.CONFIGURATOR)


def can_operate(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(OPERATE_PERMISSION))


def context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    """The admin's own context (header, user tools, nav sidebar) plus the page's."""
    return {**admin.site.each_context(request), "title": title, "nav": NAV,
            "can_operate": can_operate(request), **extra}


def run(function: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """Await an async action or bus read from a sync view."""
    return async_to_sync(function)(*args, **kwargs)


def report(request: HttpRequest, what: str, outcome: Outcome) -> None:
    """The station's answer as a message on the next page: "what: Status (detail)"."""
    text = f"{what}: {outcome.status}" + (f" ({outcome.detail})" if outcome.detail else "")
    messages.add_message(request, messages.SUCCESS if outcome.done else messages.ERROR, text)
