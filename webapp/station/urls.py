"""URLs of the station app: the kiosk HMI, plus the jobs pages (webapp.station.urls_jobs)."""

from django.urls import include, path

from webapp.station import views

urlpatterns = [
    path("hmi/", views.hmi, name="hmi"),
    path("", include("webapp.station.urls_jobs")),
]
