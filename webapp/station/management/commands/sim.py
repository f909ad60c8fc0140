"""`python manage.py sim ACTION ...`: drive the simulator from outside, over the bus.

    sim plug N [--soc P] [--target-soc P] [--capacity-kwh K] [--max-power-kw W]
    sim unplug N
    sim swipe UID          (10 hex digits, the EM4100 card id)
    sim estop on|off

Exit codes: 0 done; 1 the simulator is not answering (not running, Redis down) or refused
the action; 2 bad usage (unknown action, unknown connector, bad value).
"""

from __future__ import annotations

import argparse
import asyncio

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bus import Bus, BusRequestError, contract
from bus.enums import ReplyError
from bus.messages import CommandResult, SimAction
from bus.service import REDIS_ERRORS
from workers.common.station_config import ConfigError, load_from_settings
from workers.drivers.em4100 import FrameError, normalise_uid

USAGE_ERROR = 2
NOT_DONE = 1
REPLY_TIMEOUT_S = 3.0  # the simulator answers within milliseconds; do not keep an operator waiting


def _percent(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage 0..100")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _uid(text: str) -> str:
    try:
        return normalise_uid(text)
    except FrameError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


class Command(BaseCommand):
    help = "Drive the simulator: plug/unplug an EV, present an RFID card, press/release e-stop."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        plug = actions.add_parser("plug", help="plug an EV into connector N")
        plug.add_argument("connector", type=int)
        plug.add_argument("--soc", type=_percent, help="EV state of charge, %% (default 20)")
        plug.add_argument("--target-soc", type=_percent, help="SoC at which the EV stops, %% (default 80)")
        plug.add_argument("--capacity-kwh", type=_positive, help="battery size, kWh (default 60)")
        plug.add_argument("--max-power-kw", type=_positive,
                          help="most power the EV takes, kW (default 100 DC, 11 AC)")
        unplug = actions.add_parser("unplug", help="unplug the EV from connector N")
        unplug.add_argument("connector", type=int)
        swipe = actions.add_parser("swipe", help="hold a card in front of the reader")
        swipe.add_argument("uid", type=_uid, help="EM4100 card id, 10 hex digits, e.g. 0A00B1C2D3")
        estop = actions.add_parser("estop", help="press (on) or release (off) the emergency stop")
        estop.add_argument("state", choices=["on", "off"])

    def handle(self, *args: object, **options: object) -> None:
        request = self._request(options)
        if request.connector_id is not None:
            self._check_connector(request.connector_id)
        result = asyncio.run(_send(request))
        if not result.accepted:
            code = USAGE_ERROR if result.reason == "unknown_connector" else NOT_DONE
            raise CommandError(f"the simulator refused {request.action}: {result.reason}", returncode=code)
        self.stdout.write(f"sim {request.action}: done")

    def _request(self, options: dict[str, object]) -> SimAction:
        action = options["action"]
        if action == "plug":
            return SimAction(action="plug", connector_id=options["connector"], soc=options["soc"],
                             target_soc=options["target_soc"], capacity_kwh=options["capacity_kwh"],
                             max_power_kw=options["max_power_kw"])
        if action == "unplug":
            return SimAction(action="unplug", connector_id=options["connector"])
        if action == "swipe":
            return SimAction(action="swipe", uid=options["uid"])
        return SimAction(action="estop", pressed=options["state"] == "on")

    def _check_connector(self, connector_id: int) -> None:
        try:
            config = load_from_settings()
        except ConfigError as error:
            raise CommandError(str(error), returncode=USAGE_ERROR) from error
        known = sorted(c.id for c in config.connectors)
        if connector_id not in known:
            raise CommandError(f"unknown connector {connector_id} (station.toml has {known})",
                               returncode=USAGE_ERROR)


async def _send(request: SimAction) -> CommandResult:
    bus = Bus("manage.sim")
    try:
        return await bus.request(contract.SIM, request, timeout_s=REPLY_TIMEOUT_S)
    except BusRequestError as error:
        hint = " (is the simulator running? `manage.py chargepoint --sim` starts it)" \
            if error.code is ReplyError.TIMEOUT else ""
        raise CommandError(f"the simulator did not do {request.action}: {error}{hint}",
                           returncode=NOT_DONE) from error
    except REDIS_ERRORS as error:
        raise CommandError(f"cannot reach the bus (Redis): {error}", returncode=NOT_DONE) from error
    finally:
        await bus.close()
