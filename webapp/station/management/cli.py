"""What the station's management commands share: argument types that refuse bad numbers with
a clear message (argparse then exits 2), and one way to ask a service over the bus that turns
a silent service or a lost Redis into a CommandError (exit 1) naming what was not done."""

from __future__ import annotations

import argparse
import math

from django.core.management.base import CommandError

from bus import Bus, BusRequestError
from bus.contract import CommandSpec, Rep, Req
from bus.enums import ReplyError
from bus.service import REDIS_ERRORS

NOT_DONE = 1  # exit code: the service refused, did not answer, or the bus is unreachable
REPLY_TIMEOUT_S = 3.0


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive(text: str) -> float:
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def non_negative(text: str) -> float:
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def percent(text: str) -> float:
    value = number(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage 0..100")
    return value


async def ask(client: str, command: CommandSpec[Req, Rep], request: Req, *, what: str, hint: str) -> Rep:
    """`command`'s reply; CommandError (exit 1) saying `what` was not done, with `hint` when
    the serving service did not answer in time."""
    bus = Bus(client)
    try:
        return await bus.request(command, request, timeout_s=REPLY_TIMEOUT_S)
    except BusRequestError as error:
        extra = f" ({hint})" if error.code is ReplyError.TIMEOUT else ""
        raise CommandError(f"{what}: {error}{extra}", returncode=NOT_DONE) from error
    except REDIS_ERRORS as error:
        raise CommandError(f"cannot reach the bus (Redis): {error}", returncode=NOT_DONE) from error
    finally:
        await bus.close()
