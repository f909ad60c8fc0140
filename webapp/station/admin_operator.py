"""The configurator's own tables in the admin: the audit log and the operator settings (both
read-only) and the REST API tokens (issued and revoked here, by operators).

Settings are listed, never edited here: they are changed on the configurator's settings page,
which goes through webapp/station/actions.py (validation, audit entry, publication on the bus).
A token's key is shown once, in the message after it is made; only its SHA-256 digest is stored
and the digest is never shown. A non-superuser issues tokens only for himself, so a token never
carries more rights than the person who made it. Issuing and revoking are audited.

Imported by webapp.station.admin (which registers it).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import ForeignKey, QuerySet
from django.forms import Field, ModelForm
from django.http import HttpRequest

from webapp.station import operator_settings
from webapp.station.admin import DateRangeFilter, ReadOnlyAdmin, inline_template, may_operate
from webapp.station.operator_models import ApiToken, AuditEntry, StationSetting

SETTINGS_PAGE_URL = "/configurator/settings/"  # webapp/station/configurator: the settings form

SETTINGS_CHANGE_LIST = """{% extends "admin/change_list.html" %}
{% block object-tools-items %}<li><a id="settings-page" class="changelink" href="{{ settings_page_url }}">
Change settings</a></li>{{ block.super }}{% endblock %}
{% block content_title %}{{ block.super }}<p>Only settings changed from their default have a row.
They are changed on the configurator's <a href="{{ settings_page_url }}">settings page</a>.</p>
{% endblock %}"""


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Who changed what and when, with the station's answer. Written by actions.py only."""

    list_display = ("at", "username", "source", "action", "target", "before", "after", "outcome")
    list_filter = ("source", "action", "username", ("at", DateRangeFilter))
    search_fields = ("username", "action", "target", "outcome")
    date_hierarchy = "at"


@admin.register(StationSetting)
class StationSettingAdmin(ReadOnlyAdmin):
    list_display = ("name", "label", "value", "default", "changed_at", "changed_by")
    search_fields = ("name",)

    @property
    def change_list_template(self) -> Any:  # type: ignore[override]
        return inline_template(SETTINGS_CHANGE_LIST)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        context = {**(extra_context or {}), "settings_page_url": SETTINGS_PAGE_URL}
        return super().changelist_view(request, extra_context=context)

    @admin.display(description="setting")
    def label(self, row: StationSetting) -> str:
        spec = operator_settings.BY_NAME.get(row.name)
        return spec.label if spec is not None else "(no longer declared)"

    @admin.display(description="default")
    def default(self, row: StationSetting) -> Any:
        spec = operator_settings.BY_NAME.get(row.name)
        return spec.default if spec is not None else "-"


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """List for every viewer; issue (add) and revoke for operators; never changed or deleted
    (a revoked token stays listed: who had access, until when)."""

    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked")
    list_filter = ("revoked", "user")
    search_fields = ("name", "prefix", "user__username")
    actions = ("revoke",)
    ADD_FIELDS = ("user", "name")
    SHOWN_FIELDS = ("name", "user", "prefix", "created_at", "last_used_at", "revoked")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may_operate(request)

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """For the revoke action (ModelAdmin looks up `has_<permission>_permission`)."""
        return may_operate(request)

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        return self.ADD_FIELDS if obj is None else self.SHOWN_FIELDS

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        return () if obj is None else self.SHOWN_FIELDS

    def formfield_for_foreignkey(self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any) -> Field:
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = get_user_model().objects.filter(pk=request.user.pk)
            kwargs["initial"] = request.user.pk
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: ModelForm, change: bool) -> None:
        """Issue through ApiToken.issue (the one place that makes keys); the key goes into the
        success message, shown once."""
        token, key = ApiToken.issue(form.cleaned_data["user"], form.cleaned_data["name"])
        obj.pk = token.pk
        obj.refresh_from_db()
        _audit(request, "api_token_issue", token, "Issued")
        self.message_user(request, f"API token '{token.name}' for {token.user}: copy its key now, it is "
                          f"not shown again: {key}", messages.WARNING)

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None) -> Any:
        """Only the key message: the admin's own "added successfully" would bury it."""
        return self.response_post_save_add(request, obj)

    @admin.action(description="Revoke selected tokens", permissions=["operate"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        tokens = list(queryset.filter(revoked=False))
        for token in tokens:
            ApiToken.objects.filter(pk=token.pk).update(revoked=True)
            _audit(request, "api_token_revoke", token, "Revoked")
        self.message_user(request, f"{len(tokens)} token(s) revoked.", messages.SUCCESS)


def _audit(request: HttpRequest, action: str, token: ApiToken, outcome: str) -> None:
    AuditEntry.objects.create(username=request.user.get_username(), source=AuditEntry.Source.CONFIGURATOR,
                              action=action, target=f"{token.name} ({token.prefix}…, {token.user})"[:100],
                              outcome=outcome)
