"""The HMI screenshot page of the configurator: an operator queues the job (on the real RQ queue),
everyone with a role sees the newest PNG, served only to them and only from screenshots/.
(The job itself, in Chromium: tests/jobs/test_hmi_screenshot.py.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import django_rq
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rq import Queue

from tests.webapp.roles import client_as
from webapp.env import StationEnv
from webapp.station.models import JobRecord
from workers.jobs.runner import QUEUE

pytestmark = pytest.mark.django_db

PAGE = "/admin/station/jobrecord/hmi-screenshot/"
PNG = b"\x89PNG\r\n\x1a\n fake but served as is"


@pytest.fixture
def station_env(settings, tmp_path: Path) -> StationEnv:
    env = dataclasses.replace(settings.STATION_ENV, data_dir=tmp_path / "data")
    settings.STATION_ENV = env
    return env


@pytest.fixture
def queue(redis_client) -> Queue:
    return django_rq.get_queue(QUEUE, commit_mode="auto")


def finished_screenshot(env: StationEnv, *, result_file: str | None = None) -> JobRecord:
    record = JobRecord.objects.create(kind="hmi_screenshot", status=JobRecord.Status.FINISHED,
                                      params={"width": 1280, "height": 800}, finished_at=timezone.now())
    record.result_file = result_file or f"screenshots/hmi-{record.pk}.png"
    record.save()
    target = env.data_dir / record.result_file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(PNG)
    return record


def test_an_operator_queues_a_screenshot_and_the_page_follows_it(
        operator: Client, station_env, queue: Queue, django_capture_on_commit_callbacks) -> None:
    page = operator.get(PAGE).content.decode()
    assert "No screenshot yet." in page and 'value="Refresh HMI screenshot"' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(PAGE)

    record = JobRecord.objects.get()
    assert response.status_code == 302 and response["Location"] == PAGE
    assert (record.kind, record.status, record.params) == ("hmi_screenshot", "queued",
                                                           {"width": 1280, "height": 800})
    assert queue.job_ids == [record.rq_job_id]
    following = operator.get(PAGE).content.decode()
    assert f"job #{record.pk}</a>\nis queued." in following
    assert 'http-equiv="refresh"' in following

    with django_capture_on_commit_callbacks(execute=True):
        again = operator.post(PAGE, follow=True)
    assert f"A screenshot is already being taken (job #{record.pk})." in again.content.decode()
    assert JobRecord.objects.count() == 1 and queue.count == 1


def test_a_viewer_sees_the_newest_screenshot_but_cannot_ask_for_one(viewer: Client, station_env,
                                                                    queue: Queue) -> None:
    older = finished_screenshot(station_env)
    newest = finished_screenshot(station_env)

    page = viewer.get(PAGE).content.decode()

    assert f'src="/jobs/{newest.pk}/hmi-screenshot.png"' in page and f"/jobs/{older.pk}/" not in page
    assert 'width="1280" height="800"' in page
    assert "Refresh HMI screenshot" not in page
    assert viewer.post(PAGE).status_code == 403
    assert JobRecord.objects.count() == 2 and queue.count == 0
    image = viewer.get(f"/jobs/{newest.pk}/hmi-screenshot.png")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content) == PNG


def test_a_failure_after_the_newest_screenshot_is_shown_with_its_reason(viewer: Client, station_env) -> None:
    finished_screenshot(station_env)
    reason = "2026-01-01 10:00:00 ERROR failed: the web service does not answer"
    failed = JobRecord.objects.create(kind="hmi_screenshot", status=JobRecord.Status.FAILED,
                                      finished_at=timezone.now(), log=reason + "\n")

    page = viewer.get(PAGE).content.decode()

    assert f"The last attempt failed: {reason}" in page
    assert f"job #{failed.pk}" in page


def test_a_deleted_file_is_skipped_for_the_one_before(viewer: Client, station_env) -> None:
    kept = finished_screenshot(station_env)
    gone = finished_screenshot(station_env)
    (station_env.data_dir / gone.result_file).unlink()
    assert f'src="/jobs/{kept.pk}/hmi-screenshot.png"' in viewer.get(PAGE).content.decode()


def test_the_png_is_served_only_to_a_role_and_only_from_screenshots(viewer: Client, station_env) -> None:
    record = finished_screenshot(station_env)
    url = f"/jobs/{record.pk}/hmi-screenshot.png"

    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    assert client_as(User.objects.create_user("staff", is_staff=True)).get(url).status_code == 403
    outside = finished_screenshot(station_env, result_file="archives/hmi.png")
    assert viewer.get(f"/jobs/{outside.pk}/hmi-screenshot.png").status_code == 404
    archive = JobRecord.objects.create(kind="diagnostics_archive", status=JobRecord.Status.FINISHED,
                                       result_file=record.result_file)
    assert viewer.get(f"/jobs/{archive.pk}/hmi-screenshot.png").status_code == 404
    assert viewer.get(f"/jobs/{record.pk}/download/").status_code == 200  # the download link works too


def test_the_jobs_list_links_the_screenshot_page(viewer: Client) -> None:
    assert f'href="{PAGE}"' in viewer.get("/admin/station/jobrecord/").content.decode()
