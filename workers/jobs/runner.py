"""Runs jobs so that each leaves a record (STYLE habit 11, after NetBox `core/models/jobs.py`).

- `submit` writes the JobRecord row first and enqueues the RQ job when the transaction commits,
  so the worker never looks for a row that is not there yet;
- `perform` (the RQ entry point) claims the row, runs the kind's handler, and records the end:
  `finished` with the result file, `failed` with the reason of a `JobFailed`, or `errored`
  with the traceback of anything else;
- `run_sync` runs a job in the calling process (CLI, tests) with the same bookkeeping;
- `cancel` ends a queued or running job's row (failed, "cancelled: why") and takes the job off
  the queue or stops its process; a row that has ended is never changed again;
- `recover_interrupted` (at the jobs service's start) queues again the rows of resumable kinds
  a killed service left `running`, and ends the others errored.
"""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from datetime import datetime
from functools import partial
from typing import Any

import django_rq
import redis.exceptions
from django.db import connections, transaction
from django.utils import timezone
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from webapp.station.models import JobRecord
from workers.jobs import registry
from workers.jobs.base import RESUMABLE_KINDS, Handler, JobFailed, JobKind, JobLog, append_line
from workers.jobs.registry import HANDLERS

log = logging.getLogger(__name__)

QUEUE = "default"  # a key of settings.RQ_QUEUES
MAX_RESUMES = 5  # times an interrupted job of a resumable kind is queued again
RESUMED = "resumed after the jobs service restarted"  # its log line, counted for MAX_RESUMES
LOST_REQUEUED = "queued again: the job queue lost it (Redis restarted)"
Status = JobRecord.Status


class JobErrored(Exception):
    """Raised to RQ after a crash was recorded, so RQ's failed-job registry shows it too."""


def submit(kind: JobKind, params: dict[str, Any], *, at: datetime | None = None,
           timeout_s: int | None = None) -> JobRecord:
    """Write the row, then enqueue on commit (at once outside a transaction); `at` = run later
    (the worker's scheduler enqueues it then); `timeout_s` = the job's time limit (default: the
    queue's). A Redis outage ends the row `failed`."""
    record = JobRecord.objects.create(kind=JobKind(kind), params=params, rq_job_id=uuid.uuid4().hex)
    transaction.on_commit(partial(_enqueue, record.pk, record.rq_job_id, at, timeout_s))
    return record


def _enqueue(record_id: int, job_id: str, at: datetime | None, timeout_s: int | None) -> None:
    queue = django_rq.get_queue(QUEUE, commit_mode="auto")  # we already wait for the commit
    options: dict[str, Any] = {"job_id": job_id}
    if timeout_s is not None:
        options["job_timeout"] = timeout_s
    try:
        if at is None:
            queue.enqueue(perform, record_id, **options)
        else:
            queue.enqueue_at(at, perform, record_id, **options)
    except redis.exceptions.RedisError as error:
        log.error("job #%s not queued: %s", record_id, error)
        _end(record_id, Status.FAILED, f"not queued: the job queue (Redis) is unavailable: {error}")


def perform(record_id: int) -> str:
    """RQ entry point: run the recorded job; returns its final status."""
    record = JobRecord.objects.get(pk=record_id)
    status = execute(record)
    if status == Status.ERRORED:
        raise JobErrored(f"job #{record_id} ({record.kind}) crashed; its traceback is in the JobRecord log")
    return status


def run_sync(kind: JobKind, params: dict[str, Any]) -> JobRecord:
    """Run a job here and now (CLI, tests); returns the row in its final state."""
    record = JobRecord.objects.create(kind=JobKind(kind), params=params)
    execute(record)
    record.refresh_from_db()
    return record


def execute(record: JobRecord) -> str:
    """Claim the row and run its handler. A crash is recorded (errored + traceback) and logged,
    not raised: the row is the job's outcome for every caller."""
    claimed = JobRecord.objects.filter(pk=record.pk, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=timezone.now())
    if not claimed:
        current = JobRecord.objects.values_list("status", flat=True).get(pk=record.pk)
        log.warning("job #%s not run: it is %s, not queued", record.pk, current)
        return current
    job = JobLog(record.pk, record.kind)
    try:
        result_file = _handler(record.kind)(job, dict(record.params))
    except JobFailed as error:
        job.error("failed: %s", error)
        _end(record.pk, Status.FAILED)
        return Status.FAILED
    except Exception:
        log.exception("job %s #%s crashed", record.kind, record.pk)
        job.error("crashed:\n%s", traceback.format_exc())
        _end(record.pk, Status.ERRORED)
        return Status.ERRORED
    _end(record.pk, Status.FINISHED, result_file=result_file)
    job.info("finished%s", f": {result_file}" if result_file else "")
    return Status.FINISHED


def _handler(kind: str) -> Handler:
    try:
        return HANDLERS[JobKind(kind)]
    except ValueError as error:
        raise JobFailed(f"unknown job kind {kind!r} (known: {', '.join(JobKind)})") from error


def _end(record_id: int, status: Status, reason: str = "", *, result_file: str = "") -> None:
    """Record the end of a queued or running job (a cancelled one has ended already)."""
    changes: dict[str, Any] = {"status": status, "finished_at": timezone.now(), "result_file": result_file}
    if reason:
        changes["log"] = append_line(logging.ERROR, reason)
    JobRecord.objects.filter(pk=record_id, status__in=[Status.QUEUED, Status.RUNNING]).update(**changes)


def cancel(record_id: int, reason: str) -> bool:
    """End a queued or running job as failed ("cancelled: reason"); False if it had ended. The
    RQ job is taken off the queue, or its process stopped; a job that cannot be reached stops
    by itself where it checks its row (e.g. between upload attempts)."""
    ended = JobRecord.objects.filter(pk=record_id, status__in=[Status.QUEUED, Status.RUNNING]).update(
        status=Status.FAILED, finished_at=timezone.now(),
        log=append_line(logging.WARNING, f"cancelled: {reason}"))
    if not ended:
        return False
    rq_job_id = JobRecord.objects.values_list("rq_job_id", flat=True).get(pk=record_id)
    connection = django_rq.get_queue(QUEUE).connection
    try:
        job = Job.fetch(rq_job_id, connection=connection)
        if job.get_status() == JobStatus.STARTED:
            send_stop_job_command(connection, rq_job_id)
        else:
            job.cancel()
    except (NoSuchJobError, InvalidJobOperation, redis.exceptions.RedisError) as error:
        log.warning("job #%s cancelled in its row; the queue could not be told (%s)", record_id, error)
    log.info("job #%s cancelled: %s", record_id, reason)
    return True


# ---- recovery: jobs whose process died -----------------------------------------------------


def recover_interrupted() -> int:
    """Deal with the rows a previous jobs process left `running` (it was killed: power cut,
    SIGKILL). The station runs one jobs worker, so at its start no job can really be running.
    A job of a resumable kind (base.RESUMABLE_KINDS) is queued again under a new RQ job id and
    continues from what it had done; every other one ends errored, as does a resumable job
    already resumed MAX_RESUMES times (a job that kills the service must not loop forever).
    Rows still `queued` whose RQ job Redis lost are queued again (`_queue_lost`).
    Returns how many rows were dealt with."""
    lost = _queue_lost()  # first: the rows resumed below are enqueued only when this commits
    interrupted = list(JobRecord.objects.filter(status=Status.RUNNING).values_list(
        "pk", "kind", "log", "rq_job_id", "params"))
    for record_id, kind, text, previous_job_id, params in interrupted:
        if kind not in RESUMABLE_KINDS:
            _end(record_id, Status.ERRORED, "interrupted: the jobs service stopped while the job ran")
        elif text.count(RESUMED) >= MAX_RESUMES:
            _end(record_id, Status.ERRORED, f"interrupted and resumed too often ({MAX_RESUMES} times): "
                                            "not resumed again")
        else:
            _resume(record_id, text.count(RESUMED) + 1, _time_limit_s(previous_job_id, kind, params))
    if interrupted:
        log.error("%d job(s) were interrupted by the previous jobs process", len(interrupted))
    return len(interrupted) + lost


def _resume(record_id: int, resume: int, time_limit_s: int | None) -> None:
    """Queue an interrupted row again, with the time limit it was given."""
    job_id = uuid.uuid4().hex
    requeued = JobRecord.objects.filter(pk=record_id, status=Status.RUNNING).update(
        status=Status.QUEUED, rq_job_id=job_id,
        log=append_line(logging.WARNING, f"{RESUMED} (resume {resume} of at most {MAX_RESUMES})"))
    if requeued:
        transaction.on_commit(partial(_enqueue, record_id, job_id, None, time_limit_s))
        log.warning("job #%s resumed (resume %d)", record_id, resume)


def _queue_lost() -> int:
    """Queue again the rows still `queued` whose RQ job Redis no longer has: Redis keeps nothing
    across a power cut, the rows do. A job that was to run later runs now (its owner decided
    when to submit it). Returns how many."""
    connection = django_rq.get_queue(QUEUE).connection
    lost = 0
    rows = JobRecord.objects.filter(status=Status.QUEUED).exclude(rq_job_id="").values_list(
        "pk", "kind", "rq_job_id", "params")
    for record_id, kind, rq_job_id, params in rows:
        try:
            if Job.exists(rq_job_id, connection=connection):
                continue
        except redis.exceptions.RedisError as error:
            log.error("queued jobs not checked: the job queue (Redis) is unavailable: %s", error)
            return lost
        job_id = uuid.uuid4().hex
        if JobRecord.objects.filter(pk=record_id, status=Status.QUEUED, rq_job_id=rq_job_id).update(
                rq_job_id=job_id, log=append_line(logging.WARNING, LOST_REQUEUED)):
            limit_s = registry.time_limit_s(kind, params)
            transaction.on_commit(partial(_enqueue, record_id, job_id, None, limit_s))
            log.warning("job #%s: its queue entry was lost; queued again", record_id)
            lost += 1
    return lost


def _time_limit_s(rq_job_id: str, kind: str, params: dict[str, Any]) -> int | None:
    """The time limit of the interrupted RQ job if Redis still has it, else its kind's."""
    if rq_job_id:
        try:
            timeout = Job.fetch(rq_job_id, connection=django_rq.get_queue(QUEUE).connection).timeout
        except (NoSuchJobError, redis.exceptions.RedisError):
            timeout = None
        if timeout:
            return int(timeout)
    return registry.time_limit_s(kind, params)


def on_work_horse_killed(job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
    """RQ hook in the worker process when the forked job process died (killed, out of memory,
    segfault) before it could record its end: record it for the operator, whatever its kind
    (the service lives on, so what killed the job would likely kill it again; only a restart
    of the service resumes a job). Closes the database connection after, so the next fork
    does not inherit it."""
    record_id = _record_id(job)
    if record_id is None:
        return
    how = (f"killed by signal {os.WTERMSIG(ret_val)}" if os.WIFSIGNALED(ret_val)
           else f"exit status {os.waitstatus_to_exitcode(ret_val)}")
    try:
        JobRecord.objects.filter(pk=record_id, status__in=[Status.QUEUED, Status.RUNNING]).update(
            status=Status.ERRORED, finished_at=timezone.now(),
            log=append_line(logging.ERROR, f"the job's process died ({how})"))
    finally:
        connections.close_all()
    log.error("job #%s: its process %s died (%s)", record_id, retpid, how)


def _record_id(job: Job) -> int | None:
    if job.func_name != f"{perform.__module__}.{perform.__name__}" or not job.args:
        return None
    return int(job.args[0])
