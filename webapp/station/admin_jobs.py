"""The configurator's Jobs pages: every JobRecord with its status and log (the progress of a
running job), a form to request a diagnostics archive of a time range, the download of a
finished job's file, the HMI screenshot page, and django-rq's dashboard with the station's roles.

Who may do what: staff with the view permission of jobs (both roles) look; only an operator
(`may_operate`) requests a job or presses a button of django-rq's dashboard. django-rq checks
staff status only, so every one of its views, under /admin/django_rq/ and /django-rq/, is
wrapped by `operators_change_only`.

Imported by webapp.station.admin (which registers it) and webapp.station.urls_jobs (the file
views, the dashboard's URLs). The few templates are inline strings extending the admin's own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard
from pydantic import ValidationError

from webapp.station.admin import inline_template, may_operate
from webapp.station.configurator.updates_data import UNUSABLE_LOCATION, shown_location
from webapp.station.models import JobRecord
from workers.jobs.api import request_archive
from workers.jobs.archive import ArchiveRequest, describe
from workers.jobs.base import JobKind
from workers.jobs.hmi_screenshot import TIME_LIMIT_S, ScreenshotRequest, screenshots_dir
from workers.jobs.runner import submit

VIEW_JOBS_PERMISSION = "station.view_jobrecord"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
Status = JobRecord.Status

ARCHIVE_FORM_TEMPLATE = """{% extends "admin/base_site.html" %}
{% block content %}<div id="content-main">
<p>The archive holds the log files, the charging sessions of the range (CSV) and station.toml
with the software versions. It is built in the background; its job page shows the progress.</p>
<form method="post">{% csrf_token %}{{ form.as_div }}
<div class="submit-row"><input type="submit" class="default" value="Request archive"></div>
</form></div>{% endblock %}"""

CHANGE_LIST_TEMPLATE = """{% extends "admin/change_list.html" %}
{% block object-tools-items %}<li><a href="{% url 'admin:station_jobrecord_hmi_screenshot' %}"
class="viewlink">HMI screenshot</a></li>{% if can_request_archive %}<li>
<a href="{% url 'admin:station_jobrecord_archive' %}" class="addlink">Request diagnostics archive</a>
</li>{% endif %}{{ block.super }}{% endblock %}"""

CHANGE_FORM_TEMPLATE = """{% extends "admin/change_form.html" %}
{% block extrahead %}{{ block.super }}{% if original.status == "queued" or original.status == "running" %}
<meta http-equiv="refresh" content="2">{% endif %}{% endblock %}"""

SCREENSHOT_TEMPLATE = """{% extends "admin/base_site.html" %}
{% block extrahead %}{{ block.super }}{% if pending %}<meta http-equiv="refresh" content="2">{% endif %}
{% endblock %}
{% block content %}<div id="content-main">
<p>What the kiosk screen shows, rendered by the jobs service in a headless Chromium.</p>
{% if pending %}<p id="screenshot-pending">Taking a screenshot:
<a href="{% url 'admin:station_jobrecord_change' pending.pk %}">job #{{ pending.pk }}</a>
is {{ pending.status }}.</p>{% endif %}
{% if failed %}<p class="errornote" id="screenshot-failed">The last attempt failed: {{ failed_reason }}
(<a href="{% url 'admin:station_jobrecord_change' failed.pk %}">job #{{ failed.pk }}</a>).</p>{% endif %}
{% if can_refresh %}<form method="post">{% csrf_token %}<div class="submit-row">
<input type="submit" class="default" value="Refresh HMI screenshot"{% if pending %} disabled{% endif %}>
</div></form>{% endif %}
{% if latest %}{% with width=latest.params.width height=latest.params.height %}
<p>Taken {{ latest.finished_at|date:"Y-m-d H:i:s" }} UTC at {{ width }}x{{ height }}
(<a href="{% url 'admin:station_jobrecord_change' latest.pk %}">job #{{ latest.pk }}</a>).</p>
<img id="hmi-screenshot" src="{% url 'job_screenshot' latest.pk %}" width="{{ width }}" height="{{ height }}"
alt="The kiosk screen" style="max-width: 100%; height: auto; border: 1px solid var(--hairline-color)">
{% endwith %}{% else %}<p id="no-screenshot">No screenshot yet.</p>{% endif %}
</div>{% endblock %}"""


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
    fields = ("kind", "status", "shown_params", "created_at", "started_at", "finished_at", "result_link",
              "log_text", "rq_job_id")
    readonly_fields = fields

    @property
    def change_list_template(self) -> Any:  # type: ignore[override]
        return inline_template(CHANGE_LIST_TEMPLATE)

    @property
    def change_form_template(self) -> Any:  # type: ignore[override]
        return inline_template(CHANGE_FORM_TEMPLATE)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are requested through their own forms (archive_view, screenshot_view)

    def has_change_permission(self, request: HttpRequest, obj: JobRecord | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: JobRecord | None = None) -> bool:
        return False  # a row is the record of what ran; its file would be orphaned

    def get_urls(self) -> list[URLPattern]:
        archive = path("archive/", self.admin_site.admin_view(self.archive_view),
                       name="station_jobrecord_archive")
        screenshot = path("hmi-screenshot/", self.admin_site.admin_view(self.screenshot_view),
                          name="station_jobrecord_hmi_screenshot")
        return [archive, screenshot, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        context = {**(extra_context or {}), "can_request_archive": may_operate(request)}
        return super().changelist_view(request, extra_context=context)

    def archive_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the range form; POST: queue the archive job and go to its page."""
        if not may_operate(request):
            raise PermissionDenied
        form = ArchiveForm(request.POST if request.method == "POST" else None, initial=_default_range())
        if request.method == "POST" and form.is_valid():
            record = request_archive(form.cleaned_data["start"], form.cleaned_data["end"],
                                     all_logs=form.cleaned_data["all_logs"])
            record.refresh_from_db()  # a Redis outage has already ended it
            level = messages.ERROR if record.status == Status.FAILED else messages.SUCCESS
            self.message_user(request, f"Diagnostics archive job #{record.pk}: {record.status}.", level)
            return redirect("admin:station_jobrecord_change", record.pk)
        context = {**self.admin_site.each_context(request), "title": "Request a diagnostics archive",
                   "form": form, "opts": self.opts}
        return TemplateResponse(request, inline_template(ARCHIVE_FORM_TEMPLATE), context)

    def screenshot_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the newest screenshot and the state of the next; POST (operators): take one."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        screenshots = JobRecord.objects.filter(kind=JobKind.HMI_SCREENSHOT)
        pending = screenshots.filter(status__in=[Status.QUEUED, Status.RUNNING]).first()
        if request.method == "POST":
            if not may_operate(request):
                raise PermissionDenied
            self._request_screenshot(request, pending)
            return redirect("admin:station_jobrecord_hmi_screenshot")
        latest = _newest_with_file(screenshots.filter(status=Status.FINISHED).order_by("-finished_at"))
        ended_badly = screenshots.filter(status__in=[Status.FAILED, Status.ERRORED])
        failed = ended_badly.order_by("-finished_at").first()
        if failed is not None and latest is not None and failed.finished_at < latest.finished_at:
            failed = None
        context = {**self.admin_site.each_context(request), "title": "HMI screenshot", "opts": self.opts,
                   "pending": pending, "latest": latest, "failed": failed,
                   "failed_reason": self.last_line(failed) if failed else "",
                   "can_refresh": may_operate(request)}
        return TemplateResponse(request, inline_template(SCREENSHOT_TEMPLATE), context)

    def _request_screenshot(self, request: HttpRequest, pending: JobRecord | None) -> None:
        if pending is not None:
            self.message_user(request, f"A screenshot is already being taken (job #{pending.pk}).",
                              messages.WARNING)
            return
        record = submit(JobKind.HMI_SCREENSHOT, ScreenshotRequest().to_params(), timeout_s=TIME_LIMIT_S)
        record.refresh_from_db()  # a Redis outage has already ended it
        if record.status == Status.FAILED:
            self.message_user(request, f"HMI screenshot job #{record.pk} could not be queued: "
                              f"{self.last_line(record)}", messages.ERROR)
        else:
            self.message_user(request, f"HMI screenshot job #{record.pk} queued.", messages.SUCCESS)

    @admin.display(description="last log line")
    def last_line(self, obj: JobRecord) -> str:
        lines = obj.log.strip().splitlines()
        return lines[-1][:120] if lines else ""

    @admin.display(description="params")
    def shown_params(self, obj: JobRecord) -> str:
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>',
                           json.dumps(redacted_params(obj.params), indent=2, sort_keys=True))

    @admin.display(description="log")
    def log_text(self, obj: JobRecord) -> str:
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', obj.log)

    @admin.display(description="result")
    def result_link(self, obj: JobRecord) -> str:
        if obj.status != Status.FINISHED or not obj.result_file:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("job_download", args=[obj.pk]),
                           Path(obj.result_file).name)


def redacted_params(params: Any) -> Any:
    """The params with every `location` (FIRMWARE_UPDATE, DIAGNOSTICS_UPLOAD: a URL that may
    carry a password) as `shown_location` shows it: without the password, and a placeholder for
    one parse_location refuses, since a malformed URL may still hold a password."""
    if isinstance(params, dict):
        return {key: _shown(value) if key == "location" else redacted_params(value)
                for key, value in params.items()}
    if isinstance(params, list):
        return [redacted_params(item) for item in params]
    return params


def _shown(location: Any) -> str:
    return shown_location(location) if isinstance(location, str) else UNUSABLE_LOCATION


def _newest_with_file(records: Iterable[JobRecord]) -> JobRecord | None:
    """The first record whose file still exists (older screenshots are deleted by the job)."""
    return next((record for record in records if result_path(record) is not None), None)


def _default_range() -> dict[str, Any]:
    end = timezone.now().replace(second=0, microsecond=0)
    return {"start": end - timedelta(days=1), "end": end}


# ---- django-rq's dashboard with the station's roles -------------------------------------------


def may_view_jobs(request: HttpRequest) -> bool:
    return bool(request.user.is_staff and request.user.has_perm(VIEW_JOBS_PERMISSION))


def operators_change_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A staff user needs the view permission of jobs to look (GET, HEAD) and the operator
    role for anything else (emptying a queue, requeueing, stopping a job): 403 otherwise. A user
    who is not logged in is left to the view's own redirect to the login page."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_active and request.user.is_staff:
            allowed = may_view_jobs(request) if request.method in SAFE_METHODS else may_operate(request)
            if not allowed:
                raise PermissionDenied
        return view(request, *args, **kwargs)

    return guarded


def guarded_patterns(patterns: Iterable[URLPattern]) -> list[URLPattern]:
    return [URLPattern(pattern.pattern, operators_change_only(pattern.callback), pattern.default_args,
                       pattern.name) for pattern in patterns]


class JobDashboardAdmin(QueueAdmin):
    """django-rq's admin entry (/admin/django_rq/dashboard/), shown to both roles."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_view_jobs(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_view_jobs(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_operate(request)

    def get_urls(self) -> list[URLPattern]:
        return guarded_patterns(super().get_urls())


if admin.site.is_registered(Dashboard):  # django-rq registers it when RQ_SHOW_ADMIN_LINK is on
    admin.site.unregister(Dashboard)
    admin.site.register(Dashboard, JobDashboardAdmin)


# ---- the files jobs produce -------------------------------------------------------------------


@login_required(login_url="admin:login")
def download_result(request: HttpRequest, pk: int) -> FileResponse:
    """The file of a finished job, as a download, for staff who may view jobs."""
    return _result_response(request, pk, as_attachment=True)


@login_required(login_url="admin:login")
def screenshot_png(request: HttpRequest, pk: int) -> FileResponse:
    """A finished HMI screenshot, shown in the page (not a download)."""
    response = _result_response(request, pk, as_attachment=False, kind=JobKind.HMI_SCREENSHOT)
    response["Cache-Control"] = "private, max-age=3600"  # one job's file never changes
    return response


def _result_response(request: HttpRequest, pk: int, *, as_attachment: bool,
                     kind: JobKind | None = None) -> FileResponse:
    if not may_view_jobs(request):
        raise PermissionDenied
    records = JobRecord.objects.filter(status=Status.FINISHED)
    record = get_object_or_404(records.filter(kind=kind) if kind else records, pk=pk)
    target = result_path(record)
    if target is None:
        raise Http404("this job has no file to show")
    return FileResponse(target.open("rb"), as_attachment=as_attachment, filename=target.name)


def result_path(record: JobRecord) -> Path | None:
    """The record's result file if it is an existing file in its kind's folder (screenshots/
    for HMI screenshots, archives/ for the others) of STATION_DATA_DIR, symlinks and '..'
    resolved first; else None."""
    if not record.result_file:
        return None
    env = settings.STATION_ENV
    folder = screenshots_dir(env) if record.kind == JobKind.HMI_SCREENSHOT else env.archives_dir
    candidate = (env.data_dir / record.result_file).resolve()
    if not candidate.is_relative_to(folder.resolve()) or not candidate.is_file():
        return None
    return candidate
