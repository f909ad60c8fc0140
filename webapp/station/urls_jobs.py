"""URLs of the jobs pages outside the admin: a finished job's file (download, or an HMI
screenshot shown in a page), and django-rq's dashboard with the station's roles (mounted at
/django-rq/ by webapp/urls.py). The archive request form and the screenshot page live in the
admin: admin/station/jobrecord/archive/ and admin/station/jobrecord/hmi-screenshot/."""

from __future__ import annotations

import django_rq.urls
from django.urls import URLPattern, path

from webapp.station import admin_jobs

urlpatterns = [
    path("jobs/<int:pk>/download/", admin_jobs.download_result, name="job_download"),
    path("jobs/<int:pk>/hmi-screenshot.png", admin_jobs.screenshot_png, name="job_screenshot"),
]


def rq_dashboard_urls() -> tuple[list[URLPattern], str]:
    """django-rq's URLs (for `include`, namespace django_rq), each view wrapped so that a
    viewer may look but only an operator may change anything."""
    return admin_jobs.guarded_patterns(django_rq.urls.urlpatterns), django_rq.urls.app_name
