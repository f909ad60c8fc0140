"""Restarting the station's services on request (contract.RESTART, sent by ocpp16 for an OCPP Reset).

Why chargepoint does it: it started the services, so it alone can stop them in order and start
them again, and a restart must not depend on the service that asked for it staying alive.

What a restart is: every service except the simulator gets SIGTERM (the work in hand finishes:
smartw leaves the hardware safe), whatever is still running after the grace gets SIGKILL, then
each starts again at once, in table order. The simulator plays the hardware (EVs stay plugged),
so it keeps running, as a real station's devices do while its computer restarts.

Soft and hard differ only by the reboot command: this software cannot power-cycle the station's
devices itself, and a test machine must never reboot. A real station may set
STATION_REBOOT_COMMAND (e.g. "systemctl reboot", with the privilege to run it): a hard restart
runs it once the services are down. Unset (the default), a hard restart is a soft one. When the
command fails or the machine does not go down, the services start again anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import time
from collections.abc import Mapping, Sequence

from bus.messages import RestartRequest
from workers.chargepoint.child import Child

log = logging.getLogger(__name__)

REBOOT_COMMAND_ENV = "STATION_REBOOT_COMMAND"
REBOOT_COMMAND_TIMEOUT_S = 60.0  # a reboot command that hangs longer is killed; services start again
EXIT_POLL_S = 0.05


class RebootCommandError(ValueError):
    """STATION_REBOOT_COMMAND cannot be split into a command line."""


def reboot_command(environ: Mapping[str, str] | None = None) -> tuple[str, ...] | None:
    """The configured reboot command as argv, or None when unset (the default)."""
    text = (os.environ if environ is None else environ).get(REBOOT_COMMAND_ENV, "").strip()
    if not text:
        return None
    try:
        return tuple(shlex.split(text))
    except ValueError as error:
        raise RebootCommandError(f"{REBOOT_COMMAND_ENV} is not a valid command line ({error}): "
                                 f"{text!r}") from None


async def run_reboot_command(argv: Sequence[str]) -> bool:
    """Run the reboot command; True when it exited 0 within REBOOT_COMMAND_TIMEOUT_S."""
    log.warning("hard reset: running the reboot command %s", shlex.join(argv))
    try:
        process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL)
    except OSError as error:
        log.error("reboot command cannot be started: %s", error)
        return False
    try:
        code = await asyncio.wait_for(process.wait(), REBOOT_COMMAND_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        log.error("reboot command still running after %.0f s: killed", REBOOT_COMMAND_TIMEOUT_S)
        return False
    if code != 0:
        log.error("reboot command exited with code %s", code)
    return code == 0


class ServiceRestart:
    """One restart of the given children; the supervisor's tick keeps reaping them meanwhile."""

    def __init__(self, children: Sequence[Child], request: RestartRequest,
                 reboot_argv: Sequence[str] | None, *, stop_grace_s: float, kill_wait_s: float) -> None:
        self.children = [child for child in children if not child.spec.sim_only]
        self.request = request
        self.reboot_argv = reboot_argv
        self.stop_grace_s = stop_grace_s
        self.kill_wait_s = kill_wait_s

    async def run(self) -> None:
        names = ", ".join(child.name for child in self.children)
        log.warning("%s restart requested (%s): restarting %s", self.request.kind,
                    self.request.reason or "no reason given", names)
        for child in self.children:
            child.terminate()
        if not await self._all_exited(self.stop_grace_s):
            for child in self.children:
                child.kill()
            await self._all_exited(self.kill_wait_s)
        if self.request.kind == "hard" and self.reboot_argv:
            await run_reboot_command(self.reboot_argv)
        now = time.monotonic()
        for child in self.children:
            child.rearm(now)
        log.info("services stopped for the restart; starting them again")

    async def _all_exited(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while any(child.running for child in self.children):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(EXIT_POLL_S)
        return True
