"""The configurator's Jobs pages: every JobRecord with its status and log (the progress of a
running job), a form to request a diagnostics archive of a time range, and the download of
a finished archive.

Imported by webapp.station.admin (which registers it) and webapp.station.urls_jobs (the
download view). The few templates are inline strings extending the admin's own, so this
module needs no template folder.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from pydantic import ValidationError

from webapp.station.models import JobRecord
from workers.jobs.api import request_archive
from workers.jobs.archive import ArchiveRequest, describe

ARCHIVE_FORM_TEMPLATE = """{% extends "admin/base_site.html" %}
{% block content %}<div id="content-main">
<p>The archive holds the log files, the charging sessions of the range (CSV) and station.toml
with the software versions. It is built in the background; its job page shows the progress.</p>
<form method="post">{% csrf_token %}{{ form.as_div }}
<div class="submit-row"><input type="submit" class="default" value="Request archive"></div>
</form></div>{% endblock %}"""

CHANGE_LIST_TEMPLATE = """{% extends "admin/change_list.html" %}
{% block object-tools-items %}{% if can_request_archive %}<li>
<a href="{% url 'admin:station_jobrecord_archive' %}" class="addlink">Request diagnostics archive</a>
</li>{% endif %}{{ block.super }}{% endblock %}"""

CHANGE_FORM_TEMPLATE = """{% extends "admin/change_form.html" %}
{% block extrahead %}{{ block.super }}{% if original.status == "queued" or original.status == "running" %}
<meta http-equiv="refresh" content="2">{% endif %}{% endblock %}"""


@cache
def _template(source: str) -> Any:
    return engines["django"].from_string(source)


class ArchiveForm(forms.Form):
    """A time range; the rule (start before end) is ArchiveRequest's, shared with the job."""

    start = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                help_text="Start of the range (station time, UTC).")
    end = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                              help_text="End of the range (station time, UTC).")
    all_logs = forms.BooleanField(required=False, label="All log files",
                                  help_text="Include every log file, not only those written since the start.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "start" in data and "end" in data:
            try:
                ArchiveRequest(start=data["start"], end=data["end"], all_logs=data.get("all_logs", False))
            except ValidationError as error:
                raise forms.ValidationError(describe(error)) from error
        return data


@admin.register(JobRecord)
class JobRecordAdmin(admin.ModelAdmin):
    """Read-only: rows are written by the job framework, never edited by hand."""

    list_display = ("id", "kind", "status", "created_at", "finished_at", "last_line", "result_link")
    list_filter = ("status", "kind")
    fields = ("kind", "status", "params", "created_at", "started_at", "finished_at", "result_link",
              "log_text", "rq_job_id")
    readonly_fields = fields

    @property
    def change_list_template(self) -> Any:  # type: ignore[override]
        return _template(CHANGE_LIST_TEMPLATE)

    @property
    def change_form_template(self) -> Any:  # type: ignore[override]
        return _template(CHANGE_FORM_TEMPLATE)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are requested through their own forms (archive_view)

    def has_change_permission(self, request: HttpRequest, obj: JobRecord | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: JobRecord | None = None) -> bool:
        return False  # a row is the record of what ran; its file would be orphaned

    def get_urls(self) -> list[URLPattern]:
        archive = path("archive/", self.admin_site.admin_view(self.archive_view),
                       name="station_jobrecord_archive")
        return [archive, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        context = {**(extra_context or {}), "can_request_archive": _may_request(request)}
        return super().changelist_view(request, extra_context=context)

    def archive_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the range form; POST: queue the archive job and go to its page."""
        if not _may_request(request):
            raise PermissionDenied
        form = ArchiveForm(request.POST if request.method == "POST" else None, initial=_default_range())
        if request.method == "POST" and form.is_valid():
            record = request_archive(form.cleaned_data["start"], form.cleaned_data["end"],
                                     all_logs=form.cleaned_data["all_logs"])
            record.refresh_from_db()  # a Redis outage has already ended it
            level = messages.ERROR if record.status == JobRecord.Status.FAILED else messages.SUCCESS
            self.message_user(request, f"Diagnostics archive job #{record.pk}: {record.status}.", level)
            return redirect("admin:station_jobrecord_change", record.pk)
        context = {**self.admin_site.each_context(request), "title": "Request a diagnostics archive",
                   "form": form, "opts": self.opts}
        return TemplateResponse(request, _template(ARCHIVE_FORM_TEMPLATE), context)

    @admin.display(description="last log line")
    def last_line(self, obj: JobRecord) -> str:
        lines = obj.log.strip().splitlines()
        return lines[-1][:120] if lines else ""

    @admin.display(description="log")
    def log_text(self, obj: JobRecord) -> str:
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', obj.log)

    @admin.display(description="result")
    def result_link(self, obj: JobRecord) -> str:
        if obj.status != JobRecord.Status.FINISHED or not obj.result_file:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("job_download", args=[obj.pk]),
                           Path(obj.result_file).name)


def _may_request(request: HttpRequest) -> bool:
    return request.user.has_perm("station.add_jobrecord")


def _default_range() -> dict[str, Any]:
    end = timezone.now().replace(second=0, microsecond=0)
    return {"start": end - timedelta(days=1), "end": end}


@login_required(login_url="admin:login")
def download_result(request: HttpRequest, pk: int) -> FileResponse:
    """The file of a finished job, for staff who may view jobs; only files under archives/."""
    if not (request.user.is_staff and request.user.has_perm("station.view_jobrecord")):
        raise PermissionDenied
    record = get_object_or_404(JobRecord, pk=pk, status=JobRecord.Status.FINISHED)
    target = result_path(record)
    if target is None:
        raise Http404("this job has no downloadable file")
    return FileResponse(target.open("rb"), as_attachment=True, filename=target.name)


def result_path(record: JobRecord) -> Path | None:
    """The record's result file if it is an existing file under STATION_DATA_DIR/archives/
    (symlinks and '..' resolved first), else None."""
    if not record.result_file:
        return None
    env = settings.STATION_ENV
    archives = env.archives_dir.resolve()
    candidate = (env.data_dir / record.result_file).resolve()
    if not candidate.is_relative_to(archives) or not candidate.is_file():
        return None
    return candidate
