"""`python manage.py station ACTION ...`: the station's availability and free mode, set in smartw.

    station availability --station|--connector N operative|inoperative
    station free-mode on|off [--id-tag TAG]

smartw answers as the station answers OCPP's ChangeAvailability: Accepted; Scheduled (a session
runs there: the connector turns Unavailable when it ends, the session is never stopped); or
Rejected. In free mode a plugged EV starts charging at once with TAG (default "FREEMODE", or the
last one given), without a card. smartw keeps both across restarts (workers/smartw/availability.py).

Exit codes: 0 Accepted or Scheduled (free mode: done); 1 Rejected or not saved, smartw or the bus
not answering, station.toml unreadable; 2 bad usage (unknown connector, no scope or both, a bad idTag).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bus import contract
from bus.contract import CommandSpec, Rep, Req
from bus.messages import ChangeAvailabilityRequest, FreeModeRequest
from webapp.station.management.cli import NOT_DONE, ask
from workers.common.station_config import ConfigError, load_from_settings

USAGE_ERROR = 2
STATION_ID = 0  # OCPP connectorId of the whole station
ID_TAG_MAX = 20  # OCPP IdToken is a CiString20


def _id_tag(text: str) -> str:
    if not 1 <= len(text) <= ID_TAG_MAX or not text.isprintable() or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"an idTag is 1 to {ID_TAG_MAX} printable characters without "
                                         f"spaces, got {text!r}")
    return text


class Command(BaseCommand):
    help = "Set the station or a connector Operative/Inoperative; switch free mode on or off."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        availability = actions.add_parser("availability",
                                          help="Operative or Inoperative (kept across restarts)")
        scope = availability.add_mutually_exclusive_group(required=True)
        scope.add_argument("--station", action="store_true", help="the whole station (OCPP connector 0)")
        scope.add_argument("--connector", type=int, metavar="N", help="connector N of station.toml")
        availability.add_argument("state", choices=["operative", "inoperative"])
        free_mode = actions.add_parser("free-mode", help="charge without a card: on or off")
        free_mode.add_argument("state", choices=["on", "off"])
        free_mode.add_argument("--id-tag", type=_id_tag, help="idTag of free sessions (with `on`; "
                               "default: the last one given, at first FREEMODE)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "availability":
            self._availability(options)
        else:
            self._free_mode(options)

    def _availability(self, options: dict[str, Any]) -> None:
        connector_id = STATION_ID if options["station"] else self._known_connector(options["connector"])
        where = "station" if connector_id == STATION_ID else f"connector {connector_id}"
        request = ChangeAvailabilityRequest(connector_id=connector_id,
                                            operative=options["state"] == "operative")
        reply = _ask(contract.AVAILABILITY, request)
        message = f"{where} {options['state']}: {reply.status}"
        if reply.status == "Rejected":
            raise CommandError(message, returncode=NOT_DONE)
        self.stdout.write(message)

    def _free_mode(self, options: dict[str, Any]) -> None:
        enabled = options["state"] == "on"
        if options["id_tag"] is not None and not enabled:
            raise CommandError("--id-tag goes with `free-mode on`", returncode=USAGE_ERROR)
        result = _ask(contract.FREE_MODE, FreeModeRequest(enabled=enabled, id_tag=options["id_tag"]))
        if not result.accepted:
            raise CommandError(f"free mode {options['state']}: refused ({result.reason})",
                               returncode=NOT_DONE)
        self.stdout.write(f"free mode {options['state']}: done")

    def _known_connector(self, connector_id: int) -> int:
        try:
            known = sorted(c.id for c in load_from_settings().connectors)
        except ConfigError as error:
            raise CommandError(str(error), returncode=NOT_DONE) from error
        if connector_id not in known:
            raise CommandError(f"unknown connector {connector_id} (station.toml has {known}; "
                               "--station sets the whole station)", returncode=USAGE_ERROR)
        return connector_id


def _ask(command: CommandSpec[Req, Rep], request: Req) -> Rep:
    return asyncio.run(ask("manage.station", command, request, what=f"smartw did not answer {command.name}",
                           hint="is smartw running? `manage.py chargepoint` starts it"))
