"""The two roles in the configurator: a viewer sees every table of the station app and the job
dashboard but changes nothing anywhere (no add/change/delete, no actions, 403 on every button of
django-rq's dashboard); an operator may press them. Users and roles through the real groups of
migration 0009, the real admin site and the real RQ queue on the test Redis."""

from __future__ import annotations

import django_rq
import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client, RequestFactory

from tests.webapp.roles import VIEWER, client_as, user_with_role
from webapp.station.models import JobRecord
from workers.jobs.runner import QUEUE

pytestmark = pytest.mark.django_db

READ_ONLY_ACTIONS = {"export_csv"}  # actions a viewer keeps: they change nothing
def station_admins() -> list[tuple[str, admin.ModelAdmin]]:
    return [(model._meta.model_name, model_admin) for model, model_admin in admin.site._registry.items()
            if model._meta.app_label == "station"]


def test_every_station_table_is_read_only_for_a_viewer() -> None:
    request = RequestFactory().get("/admin/")
    request.user = user_with_role(VIEWER)
    admins = station_admins()
    names = {name for name, _ in admins}
    assert {"chargingsession", "auditentry", "stationsetting", "apitoken", "jobrecord"} <= names

    for name, model_admin in admins:
        assert model_admin.has_view_permission(request), name
        assert not model_admin.has_add_permission(request), name
        assert not model_admin.has_change_permission(request), name
        assert not model_admin.has_delete_permission(request), name
        assert set(model_admin.get_actions(request)) <= READ_ONLY_ACTIONS, name


def test_every_station_table_lists_for_a_viewer_without_add_buttons(viewer: Client) -> None:
    for name, _ in station_admins():
        response = viewer.get(f"/admin/station/{name}/")
        assert response.status_code == 200, name
        assert f"/admin/station/{name}/add/".encode() not in response.content, name


def test_a_viewer_cannot_post_a_change_nor_an_action(viewer: Client) -> None:
    record = JobRecord.objects.create(kind="diagnostics_archive")
    change = f"/admin/station/jobrecord/{record.pk}/change/"
    assert viewer.post(change, {"status": "failed"}).status_code == 403
    assert viewer.post("/admin/station/apitoken/add/", {"user": 1, "name": "x"}).status_code == 403
    assert viewer.get("/admin/station/jobrecord/archive/").status_code == 403
    record.refresh_from_db()
    assert record.status == JobRecord.Status.QUEUED


def test_staff_without_a_role_sees_no_station_table() -> None:
    client = client_as(User.objects.create_user("nobody", is_staff=True))
    assert client.get("/admin/station/chargingsession/").status_code == 403
    assert client.get("/django-rq/").status_code == 403


# ---- django-rq's dashboard ---------------------------------------------------------------------

DASHBOARDS = ("/django-rq/", "/admin/django_rq/dashboard/")


@pytest.fixture
def queued(redis_client) -> django_rq.queues.DjangoRQ:
    """The jobs queue holding one job (never run)."""
    queue = django_rq.get_queue(QUEUE, commit_mode="auto")
    queue.enqueue("builtins.print", "never run")
    return queue


@pytest.mark.parametrize("base", DASHBOARDS)
def test_a_viewer_sees_the_dashboard_and_the_queue(viewer: Client, queued, base: str) -> None:
    assert viewer.get(base).status_code == 200
    page = viewer.get(f"{base}queues/0/")
    assert page.status_code == 200
    assert queued.job_ids[0].encode() in page.content


@pytest.mark.parametrize("base", DASHBOARDS)
def test_a_viewer_cannot_empty_the_queue_but_an_operator_can(viewer: Client, operator: Client, queued,
                                                             base: str) -> None:
    url = f"{base}queues/0/empty/"

    assert viewer.post(url).status_code == 403
    assert queued.count == 1
    job_id = queued.job_ids[0]
    assert viewer.post(f"{base}queues/0/{job_id}/delete/").status_code == 403
    assert queued.count == 1

    assert operator.post(url).status_code == 302
    assert queued.count == 0


def test_the_dashboard_still_sends_anonymous_users_to_the_login(redis_client) -> None:
    for base in DASHBOARDS:
        response = Client().get(base)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], base
        assert Client().post(f"{base}queues/0/empty/").status_code == 302


def test_the_admin_index_links_the_dashboard_for_a_viewer(viewer: Client) -> None:
    response = viewer.get("/admin/")
    assert response.status_code == 200
    assert b"/admin/django_rq/dashboard/" in response.content


def test_a_viewer_follows_a_running_jobs_progress_in_its_log(viewer: Client) -> None:
    record = JobRecord.objects.create(kind="diagnostics_archive", status=JobRecord.Status.RUNNING,
                                      log="2026-03-01 10:00:00 INFO added 3 log file(s)\n")

    listing = viewer.get("/admin/station/jobrecord/").content.decode()
    page = viewer.get(f"/admin/station/jobrecord/{record.pk}/change/").content.decode()

    assert "2026-03-01 10:00:00 INFO added 3 log file(s)" in listing  # the last line in the list
    assert "INFO added 3 log file(s)" in page and 'http-equiv="refresh"' in page
