"""One supervised service process: spawn, exit, hang detection, restart backoff.

Pure bookkeeping around a `subprocess.Popen`; times are `time.monotonic()` seconds passed
in by the supervisor, so the rules below read as a table:

- exited            -> restart after the backoff (0.5 s doubling to 30 s)
- beat seen, then no fresh beat and its key gone (TTL expired) -> hung: SIGKILL, then as exited
- never beat within the start-up grace (STARTUP_GRACE_S)         -> hung
- healthy (beating) for HEALTHY_RESET_S                           -> backoff back to 0.5 s
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from bus.enums import ChildStatus
from bus.messages import ChildState, Heartbeat, utcnow
from workers.chargepoint.services import ServiceSpec

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
HEALTHY_RESET_S = 60.0  # beating this long resets the backoff
STARTUP_GRACE_S = 30.0  # a new process must beat within this, else it is hung
MISSING_CONFIRM_S = 1.0  # > one heartbeat interval: a flushed Redis is not a hang


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook that makes the kernel send SIGTERM to a child when chargepoint dies
    (even by SIGKILL), so a restarted chargepoint never runs a second copy of a service."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    prctl = libc.prctl
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return hook


_PRE_EXEC = _parent_death_signal()


class Child:
    """A service process and its restart state (one per ServiceSpec)."""

    def __init__(self, spec: ServiceSpec, cwd: Path, *, startup_grace_s: float = STARTUP_GRACE_S) -> None:
        self.spec = spec
        self.cwd = cwd
        self.startup_grace_s = startup_grace_s
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.backoff_s = BACKOFF_FIRST_S
        self.restart_at: float | None = 0.0  # due at once: the first start
        self.spawned_at = 0.0
        self.started_at: datetime | None = None
        self.first_beat_at: float | None = None
        self.fresh_beat_at = 0.0
        self.last_beat: Heartbeat | None = None
        self.killed_as_hung = False
        self.stopped = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def ready(self) -> bool:
        """Running, and its latest heartbeat says it serves what it provides."""
        return self.running and self.last_beat is not None and self.last_beat.ready

    def start_if_due(self, now: float) -> bool:
        """Start the process if its restart time has come; True if it was started."""
        if self.stopped or self.process is not None or self.restart_at is None or now < self.restart_at:
            return False
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.spec.module], cwd=self.cwd, stdin=subprocess.DEVNULL,
                # Own process group: a terminal's Ctrl-C reaches chargepoint only, which then
                # stops each service once, in order. The hook takes no locks (safe after fork).
                process_group=0, preexec_fn=_PRE_EXEC,
            )
        except OSError as error:
            log.error("cannot start %s (%s): %s", self.name, self.spec.module, error)
            self._schedule_restart(now)
            return False
        if self.started_at is not None:
            self.restarts += 1
        self.spawned_at, self.started_at = now, utcnow()
        self.first_beat_at, self.last_beat, self.killed_as_hung = None, None, False
        self.restart_at = None
        log.info("started %s (pid %s, restart %s)", self.name, self.process.pid, self.restarts)
        return True

    def reap(self, now: float) -> bool:
        """Notice an exited process and schedule its restart; True if it had exited."""
        if self.process is None or self.process.poll() is None:
            return False
        code = self.process.returncode
        # Whatever the service started and left behind (e.g. RQ's scheduler) dies with it: it
        # would keep reading the bus and take work meant for the next instance.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.last_exit_code, self.process = code, None
        if self.stopped:
            return True
        reason = "killed as hung" if self.killed_as_hung else f"exited with code {code}"
        log.error("%s %s; restarting in %.1f s", self.name, reason, self.backoff_s)
        self._schedule_restart(now)
        return True

    def observe(self, now: float, beat: Heartbeat | None) -> None:
        """Record what the heartbeat key holds now (None = no key)."""
        if self.process is None or beat is None or beat.pid != self.process.pid:
            return
        if self.first_beat_at is None:
            self.first_beat_at = now
            log.info("%s is running (pid %s)", self.name, beat.pid)
        if beat != self.last_beat:
            self.fresh_beat_at, self.last_beat = now, beat
        if now - self.first_beat_at >= HEALTHY_RESET_S:
            self.backoff_s = BACKOFF_FIRST_S

    def is_hung(self, now: float, beat: Heartbeat | None) -> bool:
        """Judge a running process by its heartbeat (call only while Redis is readable). One
        asked to stop is not: it stops beating while it finishes its work in hand."""
        if not self.running or self.process is None or self.stopped:
            return False
        if self.first_beat_at is None:
            return now - self.spawned_at > self.startup_grace_s
        key_gone = beat is None or beat.pid != self.process.pid
        return key_gone and now - self.fresh_beat_at >= MISSING_CONFIRM_S

    def kill_as_hung(self) -> None:
        if self.process is not None and self.running:
            log.error("%s (pid %s) is hung: no heartbeat; killing it", self.name, self.process.pid)
            self.killed_as_hung = True
            self._kill_group()

    def terminate(self) -> None:
        """Ask the process to stop (station stopping); it will not be restarted."""
        self.stopped = True
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.stopped = True
        if self.process is not None and self.running:
            log.warning("%s (pid %s) did not stop in time; killing it", self.name, self.process.pid)
            self._kill_group()

    def _kill_group(self) -> None:
        """SIGKILL the service and every process it started (its own process group, see spawn):
        a child left alive (e.g. RQ's scheduler) would keep the dead worker's Redis reads open
        and swallow the next job."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def rearm(self, now: float) -> None:
        """After a deliberate stop (a restart of the services, restart.py): start again at once."""
        self.reap(now)  # still `stopped`: records the exit code, schedules nothing
        self.stopped = False
        self.backoff_s = BACKOFF_FIRST_S
        self.restart_at = now

    def state(self) -> ChildState:
        return ChildState(
            name=self.name, module=self.spec.module, status=self._status(), pid=self.pid,
            restarts=self.restarts, last_exit_code=self.last_exit_code,
            started_at=self.started_at if self.process is not None else None,
        )

    def _status(self) -> ChildStatus:
        if self.process is None:
            return ChildStatus.STOPPED if self.stopped else ChildStatus.BACKOFF
        return ChildStatus.RUNNING if self.first_beat_at is not None else ChildStatus.STARTING

    def _schedule_restart(self, now: float) -> None:
        self.restart_at = now + self.backoff_s
        self.backoff_s = min(self.backoff_s * 2, BACKOFF_MAX_S)

