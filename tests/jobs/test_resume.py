"""Jobs interrupted by a killed jobs service (a power cut): rows of resumable kinds are queued
again at the next start and continue where they stopped, the others end errored, and a job
that keeps killing the service is not resumed forever.

The end-to-end test runs `python -m workers.jobs` as a real process on its own database file,
kills its whole process group with SIGKILL in the middle of an upload to a slow FTP server
(pyftpdlib, throttled), starts it again and watches the upload continue from the size the
server holds."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import django_rq
import pytest
from django.utils import timezone
from rq import Queue
from rq.job import Job

from bus.messages import TransferStatus
from tests.jobs.test_service import finished, job_row, process_env, station_dir  # noqa: F401 (fixture)
from tests.support.ftp_server import FtpServer
from tests.support.transfers import transfer_steps
from tests.support.waiting import wait_until
from webapp.station.models import JobRecord
from workers.jobs import api
from workers.jobs.base import JobKind
from workers.jobs.runner import LOST_REQUEUED, MAX_RESUMES, QUEUE, RESUMED, perform, recover_interrupted

Status = JobRecord.Status
ARCHIVE_BYTES = 6 * 1024 * 1024  # random, so the zip is as big: far more than the sockets buffer
SLOW_BYTES_PER_S = 256 * 1024


def running_row(kind: str, log: str = "", rq_job_id: str = "") -> JobRecord:
    return JobRecord.objects.create(kind=kind, params={}, status=Status.RUNNING, started_at=timezone.now(),
                                    log=log, rq_job_id=rq_job_id or uuid.uuid4().hex)


@pytest.mark.django_db
def test_a_resumable_job_is_queued_again_and_the_others_end_errored(
        queue: Queue, django_capture_on_commit_callbacks) -> None:
    old_job = queue.enqueue(perform, 0, job_timeout=1234)
    upload = running_row(JobKind.DIAGNOSTICS_UPLOAD, rq_job_id=old_job.id)
    firmware = running_row(JobKind.FIRMWARE_UPDATE)
    archive = running_row(JobKind.DIAGNOSTICS_ARCHIVE)
    done = JobRecord.objects.create(kind=JobKind.DIAGNOSTICS_UPLOAD, params={}, status=Status.FINISHED)

    with django_capture_on_commit_callbacks(execute=True):
        assert recover_interrupted() == 3

    for record in (upload, firmware, archive, done):
        record.refresh_from_db()
    assert (upload.status, firmware.status) == (Status.QUEUED, Status.QUEUED)
    assert upload.rq_job_id != old_job.id and f"{RESUMED} (resume 1 of at most {MAX_RESUMES})" in upload.log
    assert {upload.rq_job_id, firmware.rq_job_id} <= set(queue.job_ids)
    resumed = Job.fetch(upload.rq_job_id, connection=queue.connection)
    assert resumed.args == (upload.pk,) and resumed.timeout == 1234  # the time limit it had
    assert Job.fetch(firmware.rq_job_id, connection=queue.connection).timeout == 600  # the queue's
    assert archive.status == Status.ERRORED and "interrupted: the jobs service stopped" in archive.log
    assert archive.rq_job_id not in queue.job_ids and done.status == Status.FINISHED


@pytest.mark.django_db
def test_a_job_resumed_too_often_ends_errored(queue: Queue, django_capture_on_commit_callbacks) -> None:
    lines = "".join(f"2026-03-01 10:00:0{n} WARNING {RESUMED} (resume {n})\n" for n in range(1, MAX_RESUMES))
    once_more = running_row(JobKind.DIAGNOSTICS_UPLOAD, lines)
    too_often = running_row(JobKind.DIAGNOSTICS_UPLOAD, lines + f"... WARNING {RESUMED}\n")

    with django_capture_on_commit_callbacks(execute=True):
        recover_interrupted()

    once_more.refresh_from_db()
    too_often.refresh_from_db()
    assert once_more.status == Status.QUEUED and once_more.log.count(RESUMED) == MAX_RESUMES
    assert too_often.status == Status.ERRORED and "resumed too often (5 times)" in too_often.log
    assert queue.job_ids == [once_more.rq_job_id]


@pytest.mark.django_db
def test_a_resumed_upload_reuses_the_file_already_built(station_env, queue, run_worker, log_files,
                                                        ftp_server: FtpServer,
                                                        django_capture_on_commit_callbacks) -> None:
    request = upload_request(ftp_server.url("uploads/"))
    built = station_env.archives_dir / request.file_name
    built.parent.mkdir(parents=True)
    built.write_bytes(b"built before the power cut")
    record = JobRecord.objects.create(kind=JobKind.DIAGNOSTICS_UPLOAD, params=request.to_params(),
                                      status=Status.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        recover_interrupted()
    assert run_worker()

    record.refresh_from_db()
    assert record.status == Status.FINISHED, record.log
    assert "built by an earlier run of this job: reused" in record.log
    assert (ftp_server.root / "uploads" / request.file_name).read_bytes() == b"built before the power cut"


def upload_request(location: str) -> api.UploadRequest:
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(hours=1)
    return api.UploadRequest(content=api.UploadContent.DIAGNOSTICS, start=start, end=end, all_logs=True,
                             file_name=api.file_name_for(api.UploadContent.DIAGNOSTICS, start, end),
                             location=location, attempts=1, retry_interval_s=0)


# ---- a real jobs service killed in the middle of an upload ------------------------------------


def queue_upload(data_dir: Path, request: api.UploadRequest) -> int:
    """Write the row as another process would, then put its RQ job on the queue."""
    rq_job_id = uuid.uuid4().hex
    with contextlib.closing(sqlite3.connect(data_dir / "station.sqlite3")) as connection, connection:
        cursor = connection.execute(
            f"INSERT INTO {JobRecord._meta.db_table} (kind, params, status, created_at, log, result_file, "
            "rq_job_id) VALUES (?, ?, 'queued', ?, '', '', ?)",
            (JobKind.DIAGNOSTICS_UPLOAD.value, json.dumps(request.to_params()), datetime.now(UTC).isoformat(),
             rq_job_id))
        record_id = cursor.lastrowid
    assert record_id is not None
    django_rq.get_queue(QUEUE, commit_mode="auto").enqueue(perform, record_id, job_id=rq_job_id,
                                                            job_timeout=request.time_limit_s())
    return record_id


def steps(job_id: int) -> list[TransferStatus]:
    return [step.status for step in transfer_steps(job_id)]


def power_cut(service: subprocess.Popen[bytes]) -> None:
    """SIGKILL the service and every process it started, the worker first (so it cannot record
    its job process's death). RQ puts each job process in a process group of its own."""
    tree = descendants(service.pid)
    os.killpg(service.pid, signal.SIGKILL)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    service.wait(10)


def descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):  # ended meanwhile
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found += children
        frontier += children
    return found


def size_on_server(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def test_an_upload_cut_by_a_killed_service_resumes_from_the_servers_size(
        station_dir: Path, redis_client, start_jobs, ftp_server: FtpServer) -> None:  # noqa: F811
    (station_dir / "logs").mkdir(exist_ok=True)
    (station_dir / "logs" / "big.log").write_bytes(os.urandom(ARCHIVE_BYTES))
    request = upload_request(ftp_server.url("uploads/"))
    remote = ftp_server.root / "uploads" / request.file_name
    ftp_server.read_limit = SLOW_BYTES_PER_S
    beside = SimpleNamespace(env=process_env(station_dir))

    first = start_jobs(beside)
    record_id = queue_upload(station_dir, request)
    wait_until(lambda: size_on_server(remote) >= SLOW_BYTES_PER_S, timeout_s=30, what="a second of upload")
    power_cut(first)
    ftp_server.read_limit = 0  # what the sockets still held arrives at once
    wait_until(lambda: request.file_name in ftp_server.stored, what="the server to end the cut upload")
    held = size_on_server(remote)
    archive = station_dir / "archives" / request.file_name
    built_at = archive.stat().st_mtime_ns
    assert job_row(station_dir, record_id)["status"] == "running"
    assert 0 < held < archive.stat().st_size

    start_jobs(beside)
    row = wait_until(lambda: finished(station_dir, record_id), timeout_s=30, what="the resumed job")

    assert row["status"] == "finished", row["log"]
    assert RESUMED in row["log"] and "reused" in row["log"]
    assert [line for line in ftp_server.commands if line.startswith("REST")] == [f"REST {held}"]
    assert remote.read_bytes() == archive.read_bytes() and archive.stat().st_mtime_ns == built_at
    assert steps(record_id) == [TransferStatus.UPLOADING, TransferStatus.UPLOADING, TransferStatus.UPLOADED]


@pytest.mark.django_db
def test_a_queued_row_whose_queue_entry_redis_lost_is_queued_again(
        queue: Queue, django_capture_on_commit_callbacks) -> None:
    """A power cut empties Redis, not the database: a row still `queued` whose RQ job is gone
    would wait forever (and ocpp16 with it). A row whose RQ job is there is left alone."""
    waiting = queue.enqueue(perform, 0)
    kept = JobRecord.objects.create(kind=JobKind.DIAGNOSTICS_ARCHIVE, params={}, rq_job_id=waiting.id)
    request = upload_request("ftp://127.0.0.1:1/uploads/")
    lost = JobRecord.objects.create(kind=JobKind.DIAGNOSTICS_UPLOAD, params=request.to_params(),
                                    rq_job_id=uuid.uuid4().hex)

    with django_capture_on_commit_callbacks(execute=True):
        assert recover_interrupted() == 1

    kept.refresh_from_db()
    lost.refresh_from_db()
    assert kept.rq_job_id == waiting.id and kept.log == ""
    assert lost.status == Status.QUEUED and LOST_REQUEUED in lost.log
    assert set(queue.job_ids) == {waiting.id, lost.rq_job_id}
    requeued = Job.fetch(lost.rq_job_id, connection=queue.connection)
    assert requeued.args == (lost.pk,) and requeued.timeout == request.time_limit_s()  # its kind's limit


@pytest.mark.django_db
def test_a_resumed_job_whose_rq_job_redis_lost_gets_its_kinds_time_limit(
        queue: Queue, django_capture_on_commit_callbacks) -> None:
    request = upload_request("ftp://127.0.0.1:1/uploads/")
    row = JobRecord.objects.create(kind=JobKind.DIAGNOSTICS_UPLOAD, params=request.to_params(),
                                   status=Status.RUNNING, rq_job_id=uuid.uuid4().hex)  # gone from Redis
    with django_capture_on_commit_callbacks(execute=True):
        recover_interrupted()
    row.refresh_from_db()
    assert Job.fetch(row.rq_job_id, connection=queue.connection).timeout == request.time_limit_s()
