"""URLs of the jobs pages outside the admin: the download of a finished job's file.
(The archive request form lives in the admin: admin/station/jobrecord/archive/.)"""

from django.urls import path

from webapp.station import admin_jobs

urlpatterns = [
    path("jobs/<int:pk>/download/", admin_jobs.download_result, name="job_download"),
]
