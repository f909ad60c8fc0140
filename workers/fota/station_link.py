"""What the FOTA job asks the running station over the bus: smartw's update hold (install
only while no connector charges) and chargepoint's exit for the install (ops/start.sh).

Jobs are synchronous (RQ); each request runs its own short event loop and connection, as
workers/jobs/progress.py does. A station service that does not answer (restarting, Redis
down) is a `StationUnreachable` the caller retries: never a reason to install anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bus import Bus, BusRequestError, contract
from bus.enums import UpdateKind
from bus.messages import CommandResult, ExitForUpdateRequest, UpdateHoldReply, UpdateHoldRequest
from bus.service import REDIS_ERRORS

ORIGIN = "jobs"
HOLD_S = 60.0  # a grant lasts this long unless renewed (a dead job frees the station)


class StationUnreachable(Exception):
    """The service did not answer (not running, busy restarting, Redis down)."""


def request_hold(reason: str) -> UpdateHoldReply:
    """Ask smartw to hold the station for the install (or renew the hold)."""
    return _request(contract.UPDATE_HOLD, UpdateHoldRequest(hold=True, reason=reason, hold_s=HOLD_S))


def release_hold(reason: str) -> None:
    """Give the station back (the update will not be installed now); best effort."""
    with contextlib.suppress(StationUnreachable):  # the hold expires by itself after HOLD_S
        _request(contract.UPDATE_HOLD, UpdateHoldRequest(hold=False, reason=reason))


def exit_for_update(kind: UpdateKind) -> CommandResult:
    """Ask chargepoint to stop every service and exit with the kind's code."""
    return _request(contract.EXIT_FOR_UPDATE, ExitForUpdateRequest(kind=kind))


def _request(spec: contract.CommandSpec[Any, Any], data: Any) -> Any:
    try:
        return asyncio.run(_send(spec, data))
    except (BusRequestError, *REDIS_ERRORS) as error:
        raise StationUnreachable(f"{spec.name}: {error}") from error


async def _send(spec: contract.CommandSpec[Any, Any], data: Any) -> Any:
    bus = Bus(ORIGIN)
    try:
        return await bus.request(spec, data)
    finally:
        await bus.close()
