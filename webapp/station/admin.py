"""The configurator (Django admin): charging sessions, the OCPP records and the runtime
settings, read-only.

Sessions (with their timelines), transactions, the outbox and the runtime settings (availability,
free mode) are written by smartw and ocpp16 only (one writer per table; a settings change goes
to smartw as a command on the bus) and session logs are never deleted, so the admin can look but
never add, change or delete (no delete permission also means no "delete selected" action).
Sessions export as CSV in the format of webapp/station/session_csv.py. The django-rq
dashboard link comes from django_rq itself (RQ_SHOW_ADMIN_LINK).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from webapp.station import session_csv
from webapp.station.models import ChargingSession, OutboxMessage, RuntimeSettings, SessionEvent, Transaction


class ReadOnlyAdmin(admin.ModelAdmin):
    """View-only: no add, change or delete, whatever the user's permissions."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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


@admin.register(ChargingSession)
class ChargingSessionAdmin(ReadOnlyAdmin):
    list_display = ("connector_id", "id_tag", "started_at", "stopped_at", "energy_kwh", "stop_reason")
    list_filter = ("connector_id", "started_at", "stop_reason")
    date_hierarchy = "started_at"
    search_fields = ("id_tag", "session_id")
    ordering = ("-started_at",)
    inlines = (SessionEventInline,)
    actions = ("export_csv",)

    @admin.display(description="energy, kWh", ordering="energy_wh")
    def energy_kwh(self, session: ChargingSession) -> str:
        return f"{session.energy_wh / 1000:.2f}"

    @admin.action(description="Export selected as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[ChargingSession]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        name = f"sessions-{timezone.now():%Y%m%dT%H%M%SZ}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        session_csv.write_sessions(response, queryset.order_by("started_at", "pk"))
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


admin.site.site_header = "Station configurator"
admin.site.site_title = "Station configurator"

from webapp.station import admin_jobs, admin_ocpp  # noqa: E402, F401  (they register themselves)
