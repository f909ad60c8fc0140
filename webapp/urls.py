"""URL map: /admin/ configurator (Django admin), /configurator/ its own pages, /api/ REST API,
/django-rq/ job dashboard, /hmi/ kiosk."""

from django.contrib import admin
from django.urls import include, path

from webapp.api import api
from webapp.station import urls_jobs

urlpatterns = [
    path("admin/", admin.site.urls),
    path("configurator/", include("webapp.station.configurator.urls")),
    path("api/", api.urls),
    path("django-rq/", include(urls_jobs.rq_dashboard_urls())),  # viewers look, operators act
    path("", include("webapp.station.urls")),
]
