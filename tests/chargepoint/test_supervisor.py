"""The supervisor's rules with real child processes (the toy services) and a real Redis.

kill -9 and SIGSTOP of real station services are in test_command.py."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from bus import contract
from bus.enums import ChildStatus
from bus.service import Service
from tests.support.station import ChargepointProcess, hold, pid_alive
from tests.support.waiting import wait_until
from workers.chargepoint.supervisor import BUS_SETTLE_S
from workers.common.redis_server import free_port, start_redis

TOY = "toy=tests.chargepoint.toy_service"
SILENT = "silent=tests.chargepoint.silent_service"
CRASHER = "crasher=tests.chargepoint.no_such_module"

StartToys = Callable[..., ChargepointProcess]
HEARTBEAT_TTL_S = Service.heartbeat_ttl_s


def test_service_that_never_beats_is_killed_after_the_grace(start_toys: StartToys) -> None:
    supervisor = start_toys(TOY, SILENT, grace=1.0)
    first = wait_until(lambda: supervisor.pids().get("silent"), timeout_s=10, what="silent started")
    wait_until(lambda: supervisor.children()["silent"].restarts >= 1, timeout_s=10,
               what="silent restarted after the grace")
    assert not pid_alive(first)
    assert supervisor.children()["silent"].status is not ChildStatus.RUNNING
    assert supervisor.children()["toy"].restarts == 0  # the healthy sibling is left alone


def test_service_that_keeps_exiting_is_restarted_with_growing_delays(start_toys: StartToys) -> None:
    supervisor = start_toys(TOY, CRASHER)
    restarts: list[tuple[float, int]] = []

    def three_restarts() -> bool:
        count = supervisor.children().get("crasher")
        if count is not None and (not restarts or restarts[-1][1] != count.restarts):
            restarts.append((time.monotonic(), count.restarts))
        return len({r for _, r in restarts if r >= 1}) >= 3

    wait_until(three_restarts, timeout_s=15, what="three restarts of a crashing child")
    times = [at for at, count in restarts if count >= 1][:3]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[1] > gaps[0] * 1.3, f"backoff should grow: {gaps}"
    assert supervisor.children()["crasher"].last_exit_code == 1


def test_sigterm_stops_every_child_and_exits_0(start_toys: StartToys) -> None:
    supervisor = start_toys(TOY, SILENT)
    pid = supervisor.wait_running(["toy"], timeout_s=20)["toy"]
    silent = wait_until(lambda: supervisor.pids().get("silent"), timeout_s=10, what="silent started")
    assert supervisor.stop() == 0
    assert not pid_alive(pid) and not pid_alive(silent)


def test_chargepoint_killed_outright_takes_its_children_along(start_toys: StartToys) -> None:
    supervisor = start_toys(TOY)
    pid = supervisor.wait_running(["toy"], timeout_s=20)["toy"]
    supervisor.process.kill()
    supervisor.process.wait(timeout=5)
    wait_until(lambda: not pid_alive(pid), timeout_s=5, what="the orphaned child to stop")


def test_redis_outage_longer_than_the_heartbeat_ttl_restarts_nothing(
        start_chargepoint: Callable[..., ChargepointProcess], tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_redis(port, tmp_path / "redis")
    try:
        supervisor = start_chargepoint("-m", "tests.chargepoint.run_supervisor", TOY, REDIS_URL=url)
        pid = supervisor.wait_running(["toy"], timeout_s=20)["toy"]
        server.terminate()
        server.wait(timeout=10)
        hold(HEARTBEAT_TTL_S + 1.5)  # every heartbeat key would have expired by now
        server = start_redis(port, tmp_path / "redis")  # back, empty
        back = datetime.now(UTC)

        def judged_since_return() -> bool:
            state = supervisor.bus.get(contract.SUPERVISOR)
            return state is not None and (state.at - back).total_seconds() > BUS_SETTLE_S + 1

        wait_until(judged_since_return, timeout_s=15, what="chargepoint judging heartbeats again")
        assert supervisor.running_pid("toy") == pid
        assert supervisor.children()["toy"].restarts == 0
        supervisor.stop()
    finally:
        server.terminate()
        server.wait(timeout=10)


def _children_running(parent: int, module: str) -> list[int]:
    """Pids of `parent`'s children running `module` (read from /proc, no Redis needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and module.encode() in argv and " Z " not in stat:
            found.append(int(entry.name))
    return found


def test_exits_are_restarted_while_redis_does_not_answer(
        start_chargepoint: Callable[..., ChargepointProcess], tmp_path: Path) -> None:
    port = free_port()
    server = start_redis(port, tmp_path / "redis")
    try:
        supervisor = start_chargepoint("-m", "tests.chargepoint.run_supervisor", TOY,
                                       REDIS_URL=f"redis://127.0.0.1:{port}/0")
        pid = supervisor.wait_running(["toy"], timeout_s=20)["toy"]
        server.send_signal(signal.SIGSTOP)  # Redis hangs: reads block instead of failing
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: [p for p in _children_running(supervisor.pid, "tests.chargepoint.toy_service")
                            if p != pid], timeout_s=5, what="toy started again without Redis")
    finally:
        server.send_signal(signal.SIGCONT)
        server.terminate()
        server.wait(timeout=10)


def test_malformed_heartbeat_is_reported_and_breaks_nothing(start_toys: StartToys) -> None:
    supervisor = start_toys(TOY)
    pid = supervisor.wait_running(["toy"], timeout_s=20)["toy"]
    supervisor.bus.redis.set(supervisor.bus.names.key(contract.HEARTBEAT.format(service="toy")), "{oops")
    wait_until(lambda: "heartbeat of toy is malformed" in supervisor.output(), timeout_s=5,
               what="the malformed heartbeat reported")
    supervisor.assert_alive()

    def toy_beats_again() -> bool:
        try:
            return supervisor.running_pid("toy") == pid
        except ValidationError:  # the toy has not overwritten the garbage yet
            return False

    wait_until(toy_beats_again, timeout_s=5, what="the toy's own heartbeat back")
    assert supervisor.children()["toy"].restarts == 0
