"""chargepoint stops the station on request (contract.SHUTDOWN, the configurator's Shutdown):
a real chargepoint process, real children, the request over the real bus."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bus import Bus, contract
from bus.enums import UpdateKind
from bus.messages import ExitForUpdateRequest, ShutdownRequest
from tests.chargepoint.conftest import StartChargepoint
from tests.support.station import ChargepointProcess, pid_alive
from workers.chargepoint.exit_codes import ExitCode

REAL = ["diag", "counters"]  # station services that run without the simulator
LINGERING = "lingering=tests.chargepoint.lingering_service"  # keeps the station stopping for a while
StartToys = Callable[..., ChargepointProcess]


async def _running(chargepoint: ChargepointProcess, names: list[str]) -> dict[str, int]:
    return await asyncio.to_thread(chargepoint.wait_running, names, timeout_s=30)


async def _exit_code(chargepoint: ChargepointProcess) -> int:
    return await asyncio.to_thread(chargepoint.wait_exit)


async def test_shutdown_answers_at_once_stops_every_service_and_exits_0(
        start_chargepoint: StartChargepoint, bus: Bus) -> None:
    chargepoint = start_chargepoint("manage.py", "chargepoint", "--only", ",".join(REAL))
    pids = await _running(chargepoint, REAL)

    reply = await bus.request(contract.SHUTDOWN, ShutdownRequest(reason="configurator: admin"))

    assert (reply.accepted, reply.reason) == (True, "stopping")
    assert await _exit_code(chargepoint) == ExitCode.STOP
    assert not any(pid_alive(pid) for pid in pids.values())
    children = {name: (child.status.value, child.pid, child.last_exit_code)
                for name, child in chargepoint.children().items()}
    assert children == {name: ("stopped", None, 0) for name in REAL}  # SIGTERM, not SIGKILL
    output = chargepoint.output()
    assert "WARNING" in output and "shutdown requested (configurator: admin)" in output


async def test_a_second_shutdown_while_stopping_is_accepted_and_changes_nothing(
        start_toys: StartToys, bus: Bus) -> None:
    chargepoint = start_toys(LINGERING)
    pid = (await _running(chargepoint, ["lingering"]))["lingering"]

    first = await bus.request(contract.SHUTDOWN, ShutdownRequest(reason="first"))
    second = await bus.request(contract.SHUTDOWN, ShutdownRequest(reason="second"))

    assert (first.accepted, first.reason) == (True, "stopping")
    assert (second.accepted, second.reason) == (True, "stopping")
    chargepoint.assert_alive()  # the child still winds down: the repeat did not cut it short
    assert await _exit_code(chargepoint) == ExitCode.STOP
    assert not pid_alive(pid)
    assert chargepoint.children()["lingering"].last_exit_code == 0  # let finish, not killed
    assert "shutdown requested (second) while already stopping: nothing changes" in chargepoint.output()


async def test_shutdown_during_an_update_keeps_the_updates_exit_code(
        start_toys: StartToys, bus: Bus) -> None:
    chargepoint = start_toys(LINGERING)
    await _running(chargepoint, ["lingering"])

    update = await bus.request(contract.EXIT_FOR_UPDATE, ExitForUpdateRequest(kind=UpdateKind.SOFTWARE))
    reply = await bus.request(contract.SHUTDOWN, ShutdownRequest(reason="impatient operator"))

    assert update.accepted and reply.accepted
    assert await _exit_code(chargepoint) == ExitCode.UPDATE_SOFTWARE


async def test_a_malformed_shutdown_request_is_refused_and_changes_nothing(
        start_toys: StartToys, bus: Bus) -> None:
    chargepoint = start_toys("toy=tests.chargepoint.toy_service")
    pid = (await _running(chargepoint, ["toy"]))["toy"]
    from bus.envelope import Envelope

    envelope = Envelope(origin="test", data={"reason": "x" * 101})
    await bus.redis.xadd(bus.names.command(contract.SHUTDOWN.name), {"m": envelope.model_dump_json()})
    popped = await bus.redis.blpop([bus.names.reply(envelope.id)], timeout=5)

    assert popped is not None and '"ValidationFailed"' in popped[1]
    chargepoint.assert_alive()
    assert chargepoint.running_pid("toy") == pid
