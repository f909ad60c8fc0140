"""URLs of the configurator's pages (mounted at /configurator/), and their link on the admin's
index: the admin index template is ours unless something else already set one."""

from django.contrib import admin
from django.urls import path

from webapp.station.configurator import (
    audit_views,
    dashboard,
    diagnostics_views,
    settings_views,
    system_views,
    updates_views,
)

app_name = "configurator"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("dashboard.json", dashboard.dashboard_json, name="dashboard_json"),
    path("settings/", settings_views.settings_page, name="settings"),
    path("settings/free-mode/", settings_views.free_mode, name="free_mode"),
    path("settings/availability/", settings_views.availability, name="availability"),
    path("settings/ocpp/", settings_views.ocpp, name="ocpp"),
    path("time/", system_views.time_page, name="time"),
    path("diagnostics/", diagnostics_views.diagnostics, name="diagnostics"),
    path("power/", system_views.power, name="power"),
    path("power/restart/", system_views.confirm_power, {"kind": "restart"}, name="restart"),
    path("power/shutdown/", system_views.confirm_power, {"kind": "shutdown"}, name="shutdown"),
    path("audit/", audit_views.audit, name="audit"),
    path("updates/", updates_views.updates, name="updates"),
    path("updates/from-url/", updates_views.update_from_url, name="update_from_url"),
    path("updates/flash/", updates_views.flash_controllers, name="flash_controllers"),
]

if admin.site.index_template is None:
    admin.site.index_template = "station/configurator/admin_index.html"
