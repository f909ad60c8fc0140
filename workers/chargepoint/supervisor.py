"""The supervisor loop: start every service, watch exits and heartbeats, restart, stop.

One tick every CHECK_PERIOD_S: reap exited children (restart after their backoff), read each
child's heartbeat key, kill a hung one, publish the children's state (contract.SUPERVISOR).
Process supervision needs no Redis: while Redis is down, exits are still restarted, and no
child is judged by its heartbeat until Redis has been back for BUS_SETTLE_S.
Commands: contract.EXIT_FOR_UPDATE (stop every service, exit with the update's code),
contract.RESTART (stop the services and start them again, restart.py: an OCPP Reset) and
contract.SHUTDOWN (the configurator's Shutdown: the SIGTERM stop path, exit 0). The shutdown
server keeps answering while the station stops, so a repeated Shutdown is told "stopping".
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from bus import contract
from bus.contract import CommandSpec, Rep, Req
from bus.messages import (
    CommandResult,
    ExitForUpdateRequest,
    Heartbeat,
    RestartRequest,
    ShutdownRequest,
    SupervisorState,
)
from bus.service import REDIS_ERRORS, Service
from bus.tasks import cancel_and_wait, run_all
from webapp.env import REPO_ROOT
from workers.chargepoint.child import STARTUP_GRACE_S, Child
from workers.chargepoint.exit_codes import ExitCode
from workers.chargepoint.restart import ServiceRestart, reboot_command
from workers.chargepoint.services import ServiceSpec

log = logging.getLogger(__name__)

CHECK_PERIOD_S = 0.1  # kill -9 or a hang is noticed within this
STATE_REFRESH_S = 1.0  # contract.SUPERVISOR is rewritten at least this often (its TTL is 3 s)
CHILD_STOP_GRACE_S = 10.0  # SIGTERM -> SIGKILL for children when the station stops
KILL_WAIT_S = 2.0  # how long to wait for SIGKILLed children to vanish
BUS_SETTLE_S = 2.5  # > heartbeat TTL: after a Redis outage children need this to beat again
BUS_IO_TIMEOUT_S = 1.0  # a Redis that stops answering must not stall the reaping of exits
COMMAND_RETRY_S = 1.0
GATE_TIMEOUT_S = 15.0  # at start-up, longest wait for a gate service (the simulator) to be ready


class Supervisor(Service):
    """chargepoint: one Child per service; `main()` returns the ExitCode."""

    name = "chargepoint"
    stop_grace_s = CHILD_STOP_GRACE_S + KILL_WAIT_S + 3.0  # the base cancels run() after this

    def __init__(self, specs: Sequence[ServiceSpec], *, cwd: Path = REPO_ROOT,
                 startup_grace_s: float = STARTUP_GRACE_S) -> None:
        super().__init__()
        self.children = [Child(spec, cwd, startup_grace_s=startup_grace_s) for spec in specs]
        self.exit_code = ExitCode.STOP
        self._bus_ok_since: float | None = None
        self._bus_failing = False
        self._bad_beats: set[str] = set()
        self._published: list[object] | None = None
        self._published_at = 0.0
        self._gates_open = False
        self._first_tick_at: float | None = None
        self._reboot_argv = reboot_command()  # a bad STATION_REBOOT_COMMAND fails the start
        self._restart: asyncio.Task[None] | None = None

    def main(self) -> int:
        super().main()
        return int(self.exit_code)

    async def run(self) -> None:
        commands = asyncio.create_task(self._serve_commands(), name="chargepoint.commands")
        try:
            await self._supervise(commands)
            if self._restart is not None:  # a restart in progress must not start services again
                await cancel_and_wait([self._restart])
            await self._stop_children()
        finally:
            for child in self.children:  # no-op after a clean stop; SIGKILL on a crash or cancel
                child.kill()
            if self._restart is not None:
                self._restart.cancel()
            await cancel_and_wait([commands])  # the shutdown server runs until here

    async def _supervise(self, commands: asyncio.Task[None]) -> None:
        names = ", ".join(child.name for child in self.children)
        log.info("chargepoint (pid %s) starting: %s", os.getpid(), names)
        while not self.stopping.is_set():
            await self._tick(time.monotonic())
            if commands.done() and not commands.cancelled():
                commands.result()  # re-raises a bug in the command server: crash, exit 1
            if self._restart is not None and self._restart.done():
                self._restart.result()  # re-raises a bug in the restart: crash, exit 1
                self._restart = None
            await self.sleep(CHECK_PERIOD_S)

    async def _tick(self, now: float) -> None:
        startable = self._startable(now)
        for child in self.children:
            child.reap(now)
            if not self.stopping.is_set() and child in startable:
                child.start_if_due(now)
        beats = await self._read_beats(now)
        if beats is not None:
            settled = self._bus_ok_since is not None and now - self._bus_ok_since >= BUS_SETTLE_S
            for child in self.children:
                beat = beats.get(child.name)
                child.observe(now, beat)
                if settled and child.is_hung(now, beat):
                    child.kill_as_hung()
        await self._publish_state(now)

    def _startable(self, now: float) -> list[Child]:
        """At start-up the services after a gate (the simulator) wait until it is ready, so
        the drivers do not begin with a burst of 'device does not answer' errors; once every
        gate has opened (or GATE_TIMEOUT_S passed) this no longer applies."""
        if self._gates_open:
            return self.children
        if self._first_tick_at is None:
            self._first_tick_at = now
        for index, child in enumerate(self.children):
            if child.spec.gate and not child.ready:
                if now - self._first_tick_at < GATE_TIMEOUT_S:
                    return self.children[:index + 1]
                log.warning("%s not ready after %.0f s; starting the other services anyway",
                            child.name, GATE_TIMEOUT_S)
        self._gates_open = True
        return self.children

    # ---- bus I/O: every Redis error of the supervisor is handled in these methods ----

    async def _read_beats(self, now: float) -> dict[str, Heartbeat | None] | None:
        """Every child's heartbeat, or None while Redis cannot be read."""
        beats: dict[str, Heartbeat | None] = {}
        try:
            async with asyncio.timeout(BUS_IO_TIMEOUT_S):
                for child in self.children:
                    beats[child.name] = await self._read_beat(child.name)
        except (*REDIS_ERRORS, TimeoutError) as error:
            self._bus_failed(error)
            return None
        if self._bus_failing:
            log.info("Redis readable again; judging heartbeats in %.1f s", BUS_SETTLE_S)
            self._bus_failing = False
        if self._bus_ok_since is None:
            self._bus_ok_since = now
        return beats

    async def _read_beat(self, name: str) -> Heartbeat | None:
        try:
            beat = await self.bus.get(contract.HEARTBEAT, service=name)
        except ValidationError as error:
            if name not in self._bad_beats:
                log.error("heartbeat of %s is malformed, treated as missing: %s", name, error)
            self._bad_beats.add(name)
            return None
        self._bad_beats.discard(name)
        return beat

    def _bus_failed(self, error: Exception) -> None:
        (log.debug if self._bus_failing else log.error)(
            "cannot read heartbeats from Redis (%s); supervising exits only", error or "timeout")
        self._bus_failing = True
        self._bus_ok_since = None

    async def _publish_state(self, now: float, *, force: bool = False) -> None:
        children = [child.state() for child in self.children]
        comparable: list[object] = [c.model_dump(exclude={"started_at"}) for c in children]
        if not force and comparable == self._published and now - self._published_at < STATE_REFRESH_S:
            return
        try:
            async with asyncio.timeout(BUS_IO_TIMEOUT_S):
                await self.bus.set(contract.SUPERVISOR, SupervisorState(pid=os.getpid(), children=children))
        except (*REDIS_ERRORS, TimeoutError) as error:
            log.debug("cannot publish children state: %s", error or "timeout")
            return
        self._published, self._published_at = comparable, now

    async def _serve_commands(self) -> None:
        never = asyncio.Event()  # the shutdown server answers until run() cancels it
        await run_all(self._serve(contract.EXIT_FOR_UPDATE, self._exit_for_update, until=self.stopping),
                      self._serve(contract.RESTART, self._restart_services, until=self.stopping),
                      self._serve(contract.SHUTDOWN, self._shutdown, until=never))

    async def _serve(self, spec: CommandSpec[Req, Rep], handler: Callable[[Req], Awaitable[Rep]], *,
                     until: asyncio.Event) -> None:
        while not until.is_set():
            try:
                await self.bus.serve(spec, handler, stop=until)
            except REDIS_ERRORS as error:
                log.debug("%s server lost Redis: %s", spec.name, error)
                await asyncio.sleep(COMMAND_RETRY_S)

    # ---- commands and stop --------------------------------------------------------

    async def _exit_for_update(self, request: ExitForUpdateRequest) -> CommandResult:
        if self.stopping.is_set():
            return CommandResult(accepted=False, reason="already_stopping")
        self.exit_code = ExitCode.for_update(request.kind)
        log.warning("update %s requested: stopping every service, then exiting with code %s",
                    request.kind, int(self.exit_code))
        self.request_stop()
        return CommandResult(accepted=True, reason="stopping")

    async def _shutdown(self, request: ShutdownRequest) -> CommandResult:
        """Stop as on SIGTERM (the same handler: children finish their work, smartw leaves the
        hardware safe, exit 0). While stopping already, a repeat changes nothing: in particular
        it neither cancels the stop at once (a second signal would) nor replaces an update's
        exit code."""
        reason = request.reason or "no reason given"
        if self.stopping.is_set():
            log.info("shutdown requested (%s) while already stopping: nothing changes", reason)
        else:
            log.warning("shutdown requested (%s): stopping every service, then exiting with code %s",
                        reason, int(ExitCode.STOP))
            self.request_stop()
        return CommandResult(accepted=True, reason="stopping")

    async def _restart_services(self, request: RestartRequest) -> CommandResult:
        """Answer at once, then restart in the background (ocpp16, which asked, is among the
        services stopped); the tick goes on reaping and publishing meanwhile."""
        if self.stopping.is_set():
            return CommandResult(accepted=False, reason="already_stopping")
        if self._restart is not None:
            return CommandResult(accepted=False, reason="already_restarting")
        restart = ServiceRestart(self.children, request, self._reboot_argv,
                                 stop_grace_s=CHILD_STOP_GRACE_S, kill_wait_s=KILL_WAIT_S)
        self._restart = asyncio.create_task(restart.run(), name="chargepoint.restart")
        return CommandResult(accepted=True, reason="restarting")

    async def _stop_children(self) -> None:
        """SIGTERM every child, wait up to CHILD_STOP_GRACE_S, SIGKILL the rest."""
        running = [child for child in self.children if child.running]
        log.info("stopping %d service(s)", len(running))
        for child in self.children:
            child.terminate()
        await self._wait_all_exited(CHILD_STOP_GRACE_S)
        for child in self.children:
            child.kill()
        await self._wait_all_exited(KILL_WAIT_S)
        now = time.monotonic()
        for child in self.children:
            child.reap(now)
        await self._publish_state(now, force=True)
        log.info("every service stopped")

    async def _wait_all_exited(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while any(child.running for child in self.children) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
