"""The jobs service: an RQ worker with RQ's built-in scheduler on the queues of
settings.RQ_QUEUES, plus the bus heartbeat chargepoint watches.

RQ's forking `Worker` runs each job in a child process, so a job that leaks memory or dies
cannot take the worker with it, and its signal handling gives the stop semantics of STYLE
habit 9: the first SIGTERM lets the job in hand finish (warm shutdown), a second one kills
it (cold shutdown). Exit code 0 after a requested stop, 1 when the loop ended by itself
(Redis lost) so chargepoint starts it again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from typing import Any, ClassVar

import django_rq
import redis.exceptions
from django.conf import settings
from django.db import connections
from rq import Worker

from workers.jobs.heartbeat import HeartbeatThread
from workers.jobs.runner import on_work_horse_killed, recover_interrupted

log = logging.getLogger(__name__)


class StationWorker(Worker):
    """RQ's Worker, remembering whether a stop was requested (through RQ's public hook)."""

    stop_requested = False

    def handle_warm_shutdown_request(self) -> None:
        self.stop_requested = True
        super().handle_warm_shutdown_request()

    def main_work_horse(self, *args: Any, **kwargs: Any) -> None:
        """The forked job process dies with this worker. RQ puts it in a process group of its
        own, so chargepoint's SIGKILL of the service's group misses it: a job left running after
        the station stopped would run beside the next instance's resumed copy (and, during an
        update, read ops/start.sh's status while dpkg runs and call the install failed)."""
        _die_with(self.pid or os.getppid())
        super().main_work_horse(*args, **kwargs)


def _die_with(parent: int) -> None:
    """SIGKILL this process when its parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl(
            pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the worker died before the hook was set
        os._exit(1)


class JobsService:
    """`python -m workers.jobs`. Not a `bus.Service`: RQ's loop is synchronous and owns the
    process's signals, so the heartbeat runs in a thread (see workers.jobs.heartbeat)."""

    name: ClassVar[str] = "jobs"
    heartbeat_interval_s: ClassVar[float] = 0.5
    heartbeat_ttl_s: ClassVar[float] = 2.0

    def main(self) -> int:
        recover_interrupted()
        connections.close_all()  # job processes are forked: they must not inherit a connection
        worker = django_rq.get_worker(*settings.RQ_QUEUES, worker_class=StationWorker,
                                      work_horse_killed_handler=on_work_horse_killed)
        beat = HeartbeatThread(self.name, interval_s=self.heartbeat_interval_s, ttl_s=self.heartbeat_ttl_s)
        beat.start()
        try:
            worker.work(with_scheduler=True, logging_level="INFO")
        except redis.exceptions.ConnectionError as error:
            log.error("jobs: cannot reach Redis: %s", error)
            return 1
        finally:
            beat.stop()
        if worker.stop_requested:
            log.info("jobs stopped")
            return 0
        log.error("jobs: the RQ worker loop ended without a stop request; exiting to be restarted")
        return 1
