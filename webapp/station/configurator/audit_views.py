"""The audit log: the newest entries (who changed what, through what, and the station's
answer), filtered by user, action and source. Read-only for everyone; rows are written by
actions.py only."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

from webapp.station.configurator import access
from webapp.station.configurator.forms import AuditFilterForm
from webapp.station.operator_models import AuditEntry

NEWEST = 200  # rows shown; older ones are in the admin's list of audit entries


@access.page(post=False)
def audit(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("station.view_auditentry"):
        raise PermissionDenied
    form = AuditFilterForm(request.GET or None)
    entries = AuditEntry.objects.all()
    if form.is_valid():
        data = form.cleaned_data
        if data["username"]:
            entries = entries.filter(username__iexact=data["username"])
        if data["action"]:
            entries = entries.filter(action__iexact=data["action"])
        if data["source"]:
            entries = entries.filter(source=data["source"])
    return TemplateResponse(request, "station/configurator/audit.html", access.context(
        request, "Audit log", form=form, entries=entries[:NEWEST], newest=NEWEST, admin_list=_admin_list()))


def _admin_list() -> str | None:
    """The admin's list of audit entries (all of them, with its own filters), if registered."""
    try:
        return reverse("admin:station_auditentry_changelist")
    except NoReverseMatch:
        return None
