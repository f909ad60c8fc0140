"""URL map: /admin/ configurator, /hmi/ kiosk, /django-rq/ job dashboard."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("django-rq/", include("django_rq.urls")),
    path("", include("webapp.station.urls")),
]
