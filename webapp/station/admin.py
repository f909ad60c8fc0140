"""The configurator (Django admin): charging sessions, the OCPP records and the runtime
settings, read-only.

Sessions (with their timelines), transactions, the outbox and the runtime settings (availability,
free mode) are written by smartw and ocpp16 only (one writer per table; a settings change goes
to smartw as a command on the bus) and session logs are never deleted, so the admin can look but
never add, change or delete (no delete permission also means no "delete selected" action).

Roles (migration 0009): a viewer may look at every table, only an operator
(`station.operate_station`) may change anything: the few pages that change something (API
tokens, job requests, the HMI screenshot, the job dashboard's buttons) check `may_operate`, and
every other ModelAdmin of the app is a ReadOnlyAdmin.

Sessions export as CSV in the format of webapp/station/session_csv.py, either the selected rows
(admin action) or every row the list's current filters and search select ("Export CSV").
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Field, Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template import engines
from django.urls import URLPattern, path
from django.utils import timezone

from webapp.station import session_csv
from webapp.station.actions import OPERATE_PERMISSION
from webapp.station.models import (
    ChargingSession,
    FirmwareUpdate,
    OutboxMessage,
    RuntimeSettings,
    SessionEvent,
    Transaction,
)


def may_operate(request: HttpRequest) -> bool:
    """The operator role (or a superuser): may change settings and act on the station."""
    return bool(request.user.has_perm(OPERATE_PERMISSION))


@cache
def inline_template(source: str) -> Any:
    """A template from a string, so the admin pages of this app need no template files."""
    return engines["django"].from_string(source)


class ReadOnlyAdmin(admin.ModelAdmin):
    """View-only: no add, change or delete, whatever the user's permissions."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DateRangeFilter(admin.FieldListFilter):
    """A "from" and a "to" day (UTC, both included) on a date-time field, as
    `?<field>_from=2025-03-01&<field>_to=2025-03-31`. A day that is not YYYY-MM-DD, or a "to"
    before the "from", is said in the filter box and selects no rows (never the unfiltered list)."""

    template = "station/admin/date_range_filter.html"

    def __init__(self, field: Field, request: HttpRequest, params: dict[str, Any], model: type[Model],
                 model_admin: admin.ModelAdmin, field_path: str) -> None:
        self.from_param, self.to_param = f"{field_path}_from", f"{field_path}_to"
        super().__init__(field, request, params, model, model_admin, field_path)
        self.from_text = self._last(self.from_param)
        self.to_text = self._last(self.to_param)
        self.error = ""
        try:
            self.since, self.until = day_range(self.from_text, self.to_text)
        except ValueError as error:
            self.error = str(error)
            self.since = self.until = None

    def _last(self, name: str) -> str:
        values = self.used_parameters.get(name) or [""]
        return str(values[-1]).strip()

    def expected_parameters(self) -> list[str]:
        return [self.from_param, self.to_param]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.error:
            return queryset.none()
        if self.since is not None:
            queryset = queryset.filter(**{f"{self.field_path}__gte": self.since})
        if self.until is not None:
            queryset = queryset.filter(**{f"{self.field_path}__lt": self.until})
        return queryset

    def choices(self, changelist: Any) -> Any:
        mine = {self.from_param, self.to_param}
        others = [(name, value) for name, values in changelist.filter_params.items() if name not in mine
                  for value in values]
        yield {"from_param": self.from_param, "to_param": self.to_param, "from_value": self.from_text,
               "to_value": self.to_text, "others": others, "error": self.error,
               "reset_query": changelist.get_query_string(remove=sorted(mine))}


def day_range(from_text: str, to_text: str) -> tuple[datetime | None, datetime | None]:
    """[start of the "from" day, start of the day after "to") in UTC; None for an empty side.
    ValueError (for people) for a day that is not YYYY-MM-DD or a "to" before the "from"."""
    first, last = _day(from_text, "from"), _day(to_text, "to")
    if first is not None and last is not None and last < first:
        raise ValueError(f"'to' ({last}) is before 'from' ({first})")
    since = datetime.combine(first, time(), tzinfo=UTC) if first is not None else None
    until = datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC) if last is not None else None
    return since, until


def _day(text: str, side: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{side}' must be a day as YYYY-MM-DD, got {text!r}") from None


class SessionEventInline(admin.TabularInline):
    """The session's timeline under the session, read-only."""

    model = SessionEvent
    fields = ("at", "kind", "detail", "data")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


SESSIONS_CHANGE_LIST = """{% extends "admin/change_list.html" %}
{% block object-tools-items %}<li><a id="export-csv" class="viewlink"
 href="{% url 'admin:station_chargingsession_export' %}?{{ request.GET.urlencode }}">Export CSV</a></li>
{{ block.super }}{% endblock %}"""


@admin.register(ChargingSession)
class ChargingSessionAdmin(ReadOnlyAdmin):
    list_display = ("connector_id", "id_tag", "started_at", "stopped_at", "energy_kwh", "stop_reason")
    list_filter = ("connector_id", ("started_at", DateRangeFilter), "stop_reason", "standard")
    date_hierarchy = "started_at"
    search_fields = ("id_tag", "session_id")
    ordering = ("-started_at",)
    inlines = (SessionEventInline,)
    actions = ("export_csv",)

    @property
    def change_list_template(self) -> Any:  # type: ignore[override]
        return inline_template(SESSIONS_CHANGE_LIST)

    def get_urls(self) -> list[URLPattern]:
        export = path("export/", self.admin_site.admin_view(self.export_view),
                      name="station_chargingsession_export")
        return [export, *super().get_urls()]

    @admin.display(description="energy, kWh", ordering="energy_wh")
    def energy_kwh(self, session: ChargingSession) -> str:
        return f"{session.energy_wh / 1000:.2f}"

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[ChargingSession]) -> HttpResponse:
        return sessions_csv_response(queryset)

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """Every session the list shows with the same query string (filters, search), not only
        the page: the list's own ChangeList does the selecting."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters as error:
            return HttpResponseBadRequest(f"cannot export: {error}", content_type="text/plain")
        problems = [spec.error for spec in changelist.filter_specs
                    if isinstance(spec, DateRangeFilter) and spec.error]
        if problems:
            return HttpResponseBadRequest("cannot export: " + "; ".join(problems), content_type="text/plain")
        return sessions_csv_response(changelist.get_queryset(request))


def sessions_csv_response(sessions: QuerySet[ChargingSession]) -> HttpResponse:
    """The sessions as a CSV download, oldest first."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"sessions-{timezone.now():%Y%m%dT%H%M%SZ}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    session_csv.write_sessions(response, sessions.order_by("started_at", "pk").iterator())
    return response


@admin.register(SessionEvent)
class SessionEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "session", "kind", "detail")
    list_filter = ("kind", "session__connector_id", "at")
    list_select_related = ("session",)
    search_fields = ("session__session_id", "session__id_tag", "detail")


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdmin):
    list_display = ("transaction_id", "connector_id", "id_tag", "started_at", "stopped_at",
                    "stop_reason")
    list_filter = ("connector_id", "started_at")
    search_fields = ("id_tag", "session_id")


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "action", "lane", "state", "attempts", "created_at", "delivered_at")
    list_filter = ("lane", "state", "action")


@admin.register(RuntimeSettings)
class RuntimeSettingsAdmin(ReadOnlyAdmin):
    list_display = ("station_operative", "inoperative_connectors", "free_mode", "free_mode_id_tag")


@admin.register(FirmwareUpdate)
class FirmwareUpdateAdmin(ReadOnlyAdmin):
    """Over-the-air updates (written by the jobs service); the location may carry a password, so
    it is never shown (the configurator's Updates page shows it without)."""

    list_display = ("id", "stage", "kind", "version", "signed", "bytes_done", "failure", "created_at",
                    "stage_changed_at")
    list_filter = ("stage", "kind", "signed")
    exclude = ("location",)


admin.site.site_header = "Station configurator"
admin.site.site_title = "Station configurator"

from webapp.station import admin_jobs, admin_ocpp, admin_operator  # noqa: E402, F401  (they register themselves)
