"""chargepoint restarts the station's services on request (contract.RESTART, an OCPP Reset):
real child processes (the toy service), the real Supervisor, the real bus."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bus import Bus, contract
from bus.messages import RestartRequest
from tests.chargepoint.conftest import StartChargepoint
from tests.support.station import ChargepointProcess, pid_alive
from tests.support.waiting import async_wait_until
from webapp.env import REPO_ROOT
from workers.chargepoint.child import Child
from workers.chargepoint.restart import RebootCommandError, ServiceRestart, reboot_command
from workers.chargepoint.services import ServiceSpec

TOY = "toy=tests.chargepoint.toy_service"
StartToys = Callable[..., ChargepointProcess]


def _toy_with_reboot_command(start_chargepoint: StartChargepoint, command: str) -> ChargepointProcess:
    return start_chargepoint("-m", "tests.chargepoint.run_supervisor", TOY, STATION_REBOOT_COMMAND=command)


async def _replaced(supervisor: ChargepointProcess, name: str, old_pid: int) -> int:
    async def new_pid() -> int | None:
        pid = await asyncio.to_thread(supervisor.running_pid, name)
        return pid if pid not in (None, old_pid) else None
    return await async_wait_until(new_pid, timeout_s=15, what=f"{name} running again with a new pid")


async def test_restart_request_stops_every_service_and_starts_it_again(
        start_toys: StartToys, bus: Bus) -> None:
    supervisor = start_toys(TOY)
    old = (await asyncio.to_thread(supervisor.wait_running, ["toy"], timeout_s=20))["toy"]

    reply = await bus.request(contract.RESTART, RestartRequest(kind="soft", reason="test"))
    again = await bus.request(contract.RESTART, RestartRequest(kind="soft"))

    assert (reply.accepted, reply.reason) == (True, "restarting")
    assert (again.accepted, again.reason) == (False, "already_restarting")
    await _replaced(supervisor, "toy", old)
    assert not pid_alive(old)
    child = supervisor.children()["toy"]
    assert (child.restarts, child.last_exit_code) == (1, 0)  # stopped by SIGTERM, cleanly
    supervisor.assert_alive()


async def test_a_service_slow_to_exit_is_left_to_finish_not_killed_as_hung(
        start_toys: StartToys, bus: Bus) -> None:
    """A stopped service's heartbeat expires before its process ends: that is not a hang."""
    supervisor = start_toys("lingering=tests.chargepoint.lingering_service")
    old = (await asyncio.to_thread(supervisor.wait_running, ["lingering"], timeout_s=20))["lingering"]

    assert (await bus.request(contract.RESTART, RestartRequest(kind="soft"))).accepted

    await _replaced(supervisor, "lingering", old)
    assert supervisor.children()["lingering"].last_exit_code == 0  # not -9: it was let finish
    assert "is hung" not in supervisor.output()


async def test_hard_restart_runs_the_configured_reboot_command_between_stop_and_start(
        start_chargepoint: StartChargepoint, bus: Bus, tmp_path: Path) -> None:
    marker = tmp_path / "rebooted"
    supervisor = _toy_with_reboot_command(start_chargepoint, f"{sys.executable} -c "
                                                             f"\"open('{marker}', 'w').write('hard')\"")
    old = (await asyncio.to_thread(supervisor.wait_running, ["toy"], timeout_s=20))["toy"]

    assert (await bus.request(contract.RESTART, RestartRequest(kind="hard"))).accepted

    await _replaced(supervisor, "toy", old)
    assert marker.read_text() == "hard"


async def test_soft_restart_never_runs_the_reboot_command(
        start_chargepoint: StartChargepoint, bus: Bus, tmp_path: Path) -> None:
    marker = tmp_path / "rebooted"
    supervisor = _toy_with_reboot_command(start_chargepoint, f"touch {marker}")
    old = (await asyncio.to_thread(supervisor.wait_running, ["toy"], timeout_s=20))["toy"]

    assert (await bus.request(contract.RESTART, RestartRequest(kind="soft"))).accepted

    await _replaced(supervisor, "toy", old)
    assert not marker.exists()


async def test_malformed_restart_request_is_refused(start_toys: StartToys, bus: Bus) -> None:
    supervisor = start_toys(TOY)
    old = (await asyncio.to_thread(supervisor.wait_running, ["toy"], timeout_s=20))["toy"]
    from bus.envelope import Envelope

    envelope = Envelope(origin="test", data={"kind": "reboot-the-world"})
    await bus.redis.xadd(bus.names.command(contract.RESTART.name), {"m": envelope.model_dump_json()})
    popped = await bus.redis.blpop([bus.names.reply(envelope.id)], timeout=5)
    assert popped is not None and '"ValidationFailed"' in popped[1]
    assert supervisor.running_pid("toy") == old


async def test_the_simulator_keeps_running_through_a_restart(redis_client) -> None:
    """The simulator plays the hardware: an EV stays plugged while the computer restarts."""
    toy = Child(ServiceSpec("toy", "tests.chargepoint.toy_service"), REPO_ROOT)
    sim = Child(ServiceSpec("sim", "tests.chargepoint.toy_service", sim_only=True), REPO_ROOT)
    try:
        assert toy.start_if_due(time.monotonic()) and sim.start_if_due(time.monotonic())
        old_toy, old_sim = toy.pid, sim.pid
        restart = ServiceRestart([sim, toy], RestartRequest(kind="hard"), None,
                                 stop_grace_s=10.0, kill_wait_s=2.0)
        await restart.run()
        assert toy.start_if_due(time.monotonic())
        assert toy.pid != old_toy and not pid_alive(old_toy)  # type: ignore[arg-type]
        assert sim.pid == old_sim and sim.running
    finally:
        for child in (toy, sim):
            child.terminate()
            if child.process is not None:
                child.process.wait(timeout=10)


@pytest.mark.parametrize(("text", "argv"), [
    ("", None), ("   ", None), ("systemctl reboot", ("systemctl", "reboot")),
    ("/bin/sh -c 'sync; reboot -f'", ("/bin/sh", "-c", "sync; reboot -f")),
])
def test_reboot_command_is_read_from_the_environment(text: str, argv: tuple[str, ...] | None) -> None:
    assert reboot_command({"STATION_REBOOT_COMMAND": text}) == argv
    assert reboot_command({}) is None


def test_unbalanced_reboot_command_is_a_clear_error() -> None:
    with pytest.raises(RebootCommandError, match="STATION_REBOOT_COMMAND is not a valid command line"):
        reboot_command({"STATION_REBOOT_COMMAND": "systemctl 'reboot"})
