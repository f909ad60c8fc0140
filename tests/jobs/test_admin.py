"""The configurator's jobs pages through the real URL map: archive download (staff only,
only files under archives/), the archive request form, and the JobRecord list and page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from tests.jobs.conftest import RANGE_END, RANGE_START
from webapp.station.models import JobRecord
from workers.jobs.api import build_archive_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def archive_record(station_env) -> JobRecord:
    record = build_archive_now(RANGE_START, RANGE_END)
    assert record.status == JobRecord.Status.FINISHED
    return record


def staff_user(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="station",
                                                         codename__in=codenames))
    return user


def download_url(record: JobRecord) -> str:
    return reverse("job_download", args=[record.pk])


def test_staff_who_may_view_jobs_download_the_archive(client, station_env, archive_record) -> None:
    client.force_login(staff_user("engineer", "view_jobrecord"))
    response = client.get(download_url(archive_record))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment; filename=\"diagnostics-")
    archive = station_env.data_dir / archive_record.result_file
    assert b"".join(response.streaming_content) == archive.read_bytes()


def test_anonymous_users_are_sent_to_the_login_page(client, archive_record) -> None:
    response = client.get(download_url(archive_record))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize(("is_staff", "codenames"), [(False, ("view_jobrecord",)), (True, ())])
def test_users_without_staff_status_or_view_permission_are_refused(client, archive_record, is_staff,
                                                                   codenames) -> None:
    user = staff_user("someone", *codenames)
    user.is_staff = is_staff
    user.save()
    client.force_login(user)
    assert client.get(download_url(archive_record)).status_code == 403


@pytest.mark.parametrize("result_file", [
    "secret_key",  # a file of the data folder, outside archives/
    "archives/../secret_key",
    "../etc/passwd",
    "/etc/passwd",
    "archives/missing.zip",
])
def test_a_result_outside_archives_or_missing_is_not_found(admin_client, station_env, result_file) -> None:
    (station_env.data_dir / "secret_key").write_text("do not serve")
    record = JobRecord.objects.create(kind="diagnostics_archive", status=JobRecord.Status.FINISHED,
                                      result_file=result_file)
    assert admin_client.get(download_url(record)).status_code == 404


def test_a_symlink_in_archives_pointing_outside_is_not_followed(admin_client, station_env) -> None:
    (station_env.data_dir / "secret_key").write_text("do not serve")
    station_env.archives_dir.mkdir()
    (station_env.archives_dir / "link.zip").symlink_to(station_env.data_dir / "secret_key")
    record = JobRecord.objects.create(kind="diagnostics_archive", status=JobRecord.Status.FINISHED,
                                      result_file="archives/link.zip")
    assert admin_client.get(download_url(record)).status_code == 404


def test_an_unfinished_job_has_nothing_to_download(admin_client, archive_record) -> None:
    JobRecord.objects.filter(pk=archive_record.pk).update(status=JobRecord.Status.RUNNING)
    assert admin_client.get(download_url(archive_record)).status_code == 404


# ---- the archive request form ----------------------------------------------------------

FORM_URL = "admin:station_jobrecord_archive"


def test_the_form_queues_an_archive_job_and_shows_its_page(admin_client, station_env, queue,
                                                           django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse(FORM_URL),
                                     {"start": "2026-03-01T10:00", "end": "2026-03-01T12:00"})

    record = JobRecord.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:station_jobrecord_change", args=[record.pk])
    assert record.status == JobRecord.Status.QUEUED
    assert record.params == {"start": "2026-03-01T10:00:00+00:00", "end": "2026-03-01T12:00:00+00:00",
                             "all_logs": False}
    assert queue.job_ids == [record.rq_job_id]


@pytest.mark.parametrize(("data", "error"), [
    ({"start": "2026-03-01T12:00", "end": "2026-03-01T10:00"}, "must be before end"),
    ({"start": "2026-03-01T10:00", "end": "2026-03-01T10:00"}, "must be before end"),
    ({"start": "yesterday", "end": "2026-03-01T10:00"}, "Enter a valid date/time."),
    ({"end": "2026-03-01T10:00"}, "This field is required."),
])
def test_a_bad_range_is_shown_on_the_form_and_queues_nothing(admin_client, queue, data, error,
                                                            django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse(FORM_URL), data)
    assert response.status_code == 200
    assert response.content.decode().count(error) == 1
    assert not JobRecord.objects.exists()
    assert queue.count == 0


def test_the_form_needs_the_operator_role(client) -> None:
    client.force_login(staff_user("viewer", "view_jobrecord"))
    assert client.get(reverse(FORM_URL)).status_code == 403
    client.force_login(staff_user("requester", "view_jobrecord", "operate_station"))
    assert client.get(reverse(FORM_URL)).status_code == 200


# ---- the list and the job page -----------------------------------------------------------


def test_the_list_links_the_form_and_shows_each_jobs_last_log_line(admin_client, archive_record) -> None:
    page = admin_client.get(reverse("admin:station_jobrecord_changelist")).content.decode()
    assert reverse(FORM_URL) in page
    assert "finished: archives/diagnostics-" in page
    assert download_url(archive_record) in page


def test_the_job_page_shows_its_log_and_refreshes_while_it_runs(admin_client, archive_record) -> None:
    url = reverse("admin:station_jobrecord_change", args=[archive_record.pk])
    page = admin_client.get(url).content.decode()
    assert "added sessions.csv with 0 session(s)" in page
    assert 'http-equiv="refresh"' not in page

    JobRecord.objects.filter(pk=archive_record.pk).update(status=JobRecord.Status.RUNNING)
    assert 'http-equiv="refresh"' in admin_client.get(url).content.decode()
