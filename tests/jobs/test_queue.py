"""Jobs through RQ: the row is written first, the job is queued on commit and run by a real
RQ worker (SimpleWorker in burst mode, on the test Redis), and every end is recorded."""

from __future__ import annotations

import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone
from rq.job import JobStatus
from rq.registry import FailedJobRegistry

from tests.jobs.conftest import RANGE_END, RANGE_START
from webapp.station.models import JobRecord
from workers.common.redis_server import free_port
from workers.jobs import runner
from workers.jobs.api import request_archive

pytestmark = pytest.mark.django_db


def test_the_job_is_queued_only_when_the_transaction_commits_then_runs(
        station_env, sessions, queue, run_worker, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        record = request_archive(RANGE_START, RANGE_END)
    assert JobRecord.objects.get(pk=record.pk).status == JobRecord.Status.QUEUED
    assert queue.count == 0  # nothing queued before the row is committed

    for callback in callbacks:
        callback()
    assert queue.job_ids == [record.rq_job_id]

    assert run_worker()
    record.refresh_from_db()
    assert record.status == JobRecord.Status.FINISHED, record.log
    with zipfile.ZipFile(station_env.data_dir / record.result_file) as archive:
        assert "sessions.csv" in archive.namelist()
    assert queue.fetch_job(record.rq_job_id).get_status() == JobStatus.FINISHED


def test_a_bad_range_through_rq_fails_the_record_but_not_the_rq_job(
        station_env, queue, run_worker, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        record = request_archive(RANGE_END, RANGE_START)
    run_worker()
    record.refresh_from_db()
    assert record.status == JobRecord.Status.FAILED
    assert "must be before end" in record.log
    assert queue.fetch_job(record.rq_job_id).return_value() == JobRecord.Status.FAILED


def test_a_crash_through_rq_errors_the_record_and_lands_in_rqs_failed_registry(
        station_env, queue, run_worker, django_capture_on_commit_callbacks) -> None:
    station_env.archives_dir.write_text("not a folder")
    with django_capture_on_commit_callbacks(execute=True):
        record = request_archive(RANGE_START, RANGE_END)
    run_worker()
    record.refresh_from_db()
    assert record.status == JobRecord.Status.ERRORED
    assert "Traceback (most recent call last)" in record.log
    assert record.rq_job_id in FailedJobRegistry(queue=queue).get_job_ids()


def test_a_job_due_later_waits_in_the_scheduler_until_its_time(
        station_env, queue, run_worker, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        later = request_archive(RANGE_START, RANGE_END, at=timezone.now() + timedelta(hours=1))
        due = request_archive(RANGE_START, RANGE_END, at=timezone.now() - timedelta(seconds=1))
    assert queue.count == 0
    assert sorted(queue.scheduled_job_registry.get_job_ids()) == sorted([later.rq_job_id, due.rq_job_id])

    run_worker()  # burst + scheduler: moves due jobs to the queue, then runs them

    due.refresh_from_db()
    later.refresh_from_db()
    assert due.status == JobRecord.Status.FINISHED
    assert later.status == JobRecord.Status.QUEUED
    assert queue.scheduled_job_registry.get_job_ids() == [later.rq_job_id]


def test_when_redis_is_down_the_row_ends_failed_with_the_reason(station_env, settings, redis_client,
                                                                 django_capture_on_commit_callbacks) -> None:
    settings.RQ_QUEUES = {runner.QUEUE: {"URL": f"redis://127.0.0.1:{free_port()}/0"}}
    with django_capture_on_commit_callbacks(execute=True):
        record = request_archive(RANGE_START, RANGE_END)
    record.refresh_from_db()
    assert record.status == JobRecord.Status.FAILED
    assert "not queued: the job queue (Redis) is unavailable" in record.log


def test_a_row_already_taken_is_not_run_again(station_env, queue, run_worker,
                                              django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        record = request_archive(RANGE_START, RANGE_END)
    run_worker()
    record.refresh_from_db()
    finished_at, log = record.finished_at, record.log

    assert runner.perform(record.pk) == JobRecord.Status.FINISHED
    record.refresh_from_db()
    assert (record.finished_at, record.log) == (finished_at, log)


def test_a_job_whose_process_died_is_recorded_as_errored(station_env, queue) -> None:
    record = JobRecord.objects.create(kind="diagnostics_archive", status=JobRecord.Status.RUNNING)
    job = queue.enqueue(runner.perform, record.pk)

    runner.on_work_horse_killed(job, 4242, 9, None)  # wait status 9: killed by SIGKILL

    record.refresh_from_db()
    assert record.status == JobRecord.Status.ERRORED
    assert "the job's process died (killed by signal 9)" in record.log


def test_rows_left_running_by_a_previous_process_are_marked_interrupted(station_env) -> None:
    running = JobRecord.objects.create(kind="diagnostics_archive", status=JobRecord.Status.RUNNING)
    done = JobRecord.objects.create(kind="diagnostics_archive", status=JobRecord.Status.FINISHED)

    assert runner.recover_interrupted() == 1

    running.refresh_from_db()
    done.refresh_from_db()
    assert running.status == JobRecord.Status.ERRORED
    assert "interrupted" in running.log
    assert done.status == JobRecord.Status.FINISHED


def test_a_row_of_an_unknown_kind_fails_naming_the_known_kinds(station_env) -> None:
    record = JobRecord.objects.create(kind="firmware_flash")
    assert runner.perform(record.pk) == JobRecord.Status.FAILED
    record.refresh_from_db()
    assert "unknown job kind 'firmware_flash' (known: diagnostics_archive, diagnostics_upload, " in record.log
