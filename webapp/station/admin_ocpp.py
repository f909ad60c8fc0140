"""The OCPP records in the configurator, read-only: the frame log (filters by direction, message
type, action and a range of days; search by message id, action or text), configuration keys,
charging profiles, the local authorization list and cache, reservations, installed CA
certificates and the security log. ocpp16 is the only writer of each table; the admin looks,
never changes.

The AuthorizationKey (the Basic-auth password) is stored as a configuration key but never shown:
its row is left out of the list and its value masked wherever it could appear.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from webapp.station.admin import DateRangeFilter, ReadOnlyAdmin
from webapp.station.models import (
    AuthCacheEntry,
    ChargingProfileRecord,
    InstalledCertificate,
    LocalAuthEntry,
    OcppFrame,
    OcppSetting,
    Reservation,
    SecurityEvent,
)

SECRET_KEYS = ("AuthorizationKey",)


@admin.register(OcppFrame)
class OcppFrameAdmin(ReadOnlyAdmin):
    list_display = ("at", "direction", "message_type", "action", "unique_id")
    list_filter = ("direction", "message_type", "action", ("at", DateRangeFilter))
    search_fields = ("unique_id", "action", "frame")
    date_hierarchy = "at"


@admin.register(OcppSetting)
class OcppSettingAdmin(ReadOnlyAdmin):
    """Keys the CSMS or the operator changed (the others have their declared defaults)."""

    list_display = ("key", "value", "changed_at")
    search_fields = ("key",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).exclude(key__in=SECRET_KEYS)


@admin.register(ChargingProfileRecord)
class ChargingProfileAdmin(ReadOnlyAdmin):
    list_display = ("charging_profile_id", "connector_id", "purpose", "stack_level", "transaction_id",
                    "installed_at")
    list_filter = ("purpose", "connector_id")


@admin.register(LocalAuthEntry)
class LocalAuthEntryAdmin(ReadOnlyAdmin):
    list_display = ("id_tag", "status", "expiry_date", "parent_id_tag")
    list_filter = ("status",)
    search_fields = ("id_tag", "parent_id_tag")


@admin.register(AuthCacheEntry)
class AuthCacheEntryAdmin(ReadOnlyAdmin):
    list_display = ("id_tag", "status", "expiry_date", "parent_id_tag", "updated_at")
    list_filter = ("status",)
    search_fields = ("id_tag", "parent_id_tag")


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ("reservation_id", "connector_id", "id_tag", "expiry_date", "ended_at", "end_reason")
    list_filter = ("end_reason", "connector_id")
    search_fields = ("id_tag",)


@admin.register(InstalledCertificate)
class InstalledCertificateAdmin(ReadOnlyAdmin):
    list_display = ("certificate_type", "serial_number", "installed_at")
    list_filter = ("certificate_type",)


@admin.register(SecurityEvent)
class SecurityEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "type", "critical", "tech_info")
    list_filter = ("critical", "type")
    date_hierarchy = "at"
