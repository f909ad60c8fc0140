"""What diagnostics.py and firmware.py share about the file transfer jobs they start
(workers/jobs: DIAGNOSTICS_UPLOAD, FIRMWARE_UPDATE).

- `start_job`: the job's row and ocpp16's own record of the request (a named OcppState) are
  written in one database transaction, and the job is queued only when it commits, so a step
  the job reports always finds the request that started it, even across a restart.
- `TransferWatcher`: the steps jobs publish on contract.FILE_TRANSFERS, read with a consumer
  group of the feature's own (an entry is acknowledged once handled, so none is lost while
  ocpp16 is down), and every `CHECK_S` the feature's look at the job rows it waits for: a
  job whose process died, or whose report was lost with Redis, still ends its request. A job
  publishes its last step before it ends its row, so the rows are looked at only once the
  stream is drained (a read found nothing new), and a row counts as ended only when it was
  already seen ended at the check before (`ended_for_sure`): otherwise a row read just before
  its job's last step would end the request from the row (DownloadFailed, UploadFailure) and
  lose what the job said (InvalidSignature and its security event, PermissionDenied...).
- `attempts_and_interval`: the requests' `retries` / `retryInterval` as the job's attempts
  and wait (absent: the charge point decides, as the requests allow).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.db import transaction

from bus import Bus, contract
from bus.messages import FileTransferProgress
from webapp.station.models import JobRecord, OcppState
from workers.jobs import api as jobs
from workers.ocpp16.txqueue import db

log = logging.getLogger(__name__)

CHECK_S = 5.0  # how often the job rows of requests still in progress are looked at
DEFAULT_ATTEMPTS = 3  # `retries` absent: the charge point decides
DEFAULT_RETRY_INTERVAL_S = 60
MAX_ATTEMPTS = 10
MAX_RETRY_INTERVAL_S = 3600
CONSUMER = "ocpp16"
ENDED_BADLY = (JobRecord.Status.FAILED, JobRecord.Status.ERRORED)


class InvalidRequest(ValueError):
    """A request field out of range (PropertyConstraintViolation)."""


def attempts_and_interval(retries: int | None, retry_interval: int | None) -> tuple[int, int]:
    """OCPP `retries` = how many times to try (at least once), `retryInterval` in seconds."""
    if any(value is not None and value < 0 for value in (retries, retry_interval)):
        raise InvalidRequest(f"retries ({retries}) and retryInterval ({retry_interval}) must not be negative")
    attempts = DEFAULT_ATTEMPTS if retries is None else min(max(retries, 1), MAX_ATTEMPTS)
    interval = DEFAULT_RETRY_INTERVAL_S if retry_interval is None else retry_interval
    return attempts, min(interval, MAX_RETRY_INTERVAL_S)


def _start(submit: Callable[[], JobRecord], state_name: str, state: Callable[[int], dict[str, Any]]) -> int:
    with transaction.atomic():
        record = submit()
        OcppState.objects.update_or_create(name=state_name, defaults={"value": state(record.pk)})
    return record.pk


async def start_job(submit: Callable[[], JobRecord], state_name: str,
                    state: Callable[[int], dict[str, Any]]) -> int:
    """Queue a job and keep `state(job id)` as OcppState `state_name`, atomically; the job id."""
    return await db(_start, submit, state_name, state)


async def job_status(job_id: int) -> str | None:
    """The job row's status; None when the row is gone."""
    return await db(jobs.job_status, job_id)


async def cancel_job(job_id: int, reason: str) -> None:
    """Stop a job still queued or running (runner.cancel logs it); one that ended is left alone."""
    await db(jobs.cancel, job_id, reason)


class TransferWatcher:
    """Feeds a feature the steps of its jobs (`on_progress`) and, every `check_s` (about: the
    stream is read in 1 s slices) once every step published so far was handled, a chance to
    look at their rows (`on_check`); the first check waits for the backlog left while ocpp16
    was down. Runs as long as the service does."""

    def __init__(self, bus: Bus, group: str, on_progress: Callable[[FileTransferProgress], Awaitable[None]],
                 on_check: Callable[[], Awaitable[None]], *, check_s: float = CHECK_S) -> None:
        self._bus = bus
        self._group = group
        self._on_progress = on_progress
        self._on_check = on_check
        self._check_s = check_s
        self._seen_ended: set[int] = set()  # job rows seen ended at the last check
        self._ended_now: set[int] = set()  # ... and at this one

    async def run(self) -> None:
        checked_at: float | None = None  # None: the backlog is still being read
        async for delivery in self._bus.consume(contract.FILE_TRANSFERS, self._group, CONSUMER):
            if delivery is not None:
                await self._on_progress(delivery.message)
                await delivery.ack()
            elif checked_at is None or time.monotonic() - checked_at >= self._check_s:
                await self._check()
                checked_at = time.monotonic()

    async def _check(self) -> None:
        self._ended_now = set()
        await self._on_check()
        self._seen_ended = self._ended_now

    def ended_for_sure(self, job_id: int) -> bool:
        """For `on_check`, about a row it found ended (or gone): True when it was so at the
        check before as well. A drained read came in between, so every step the job published
        before ending its row has reached `on_progress`; False the first time."""
        self._ended_now.add(job_id)
        return job_id in self._seen_ended
