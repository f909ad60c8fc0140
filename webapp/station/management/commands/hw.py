"""`python manage.py hw probe [--bus NAME ...] [--ids 1-30,40] [--json]`: commissioning.

Scans the configured buses, identifies meter models by their answers, reads every device of
station.toml once and prints a table (workers/drivers/probe.py). Run it with the station
stopped: serial ports and the CAN adapter are opened exclusively.

Exit codes: 0 every configured device answered and read; 1 some did not (the table says which);
2 bad usage or an unusable station.toml.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers.common.station_config import ConfigError, load_from_settings
from workers.drivers.probe import ALL_IDS, format_table, run_probe

USAGE_ERROR = 2
MISSING_DEVICE = 1


def parse_ids(text: str) -> list[int]:
    """'1-30,40' -> [1..30, 40]; Modbus device ids are 1..247."""
    ids: set[int] = set()
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            ids.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of ids like 1-30,40") from None
    if not ids or min(ids) < ALL_IDS.start or max(ids) >= ALL_IDS.stop:
        raise argparse.ArgumentTypeError(f"device ids are {ALL_IDS.start}..{ALL_IDS.stop - 1}, got {text!r}")
    return sorted(ids)


class Command(BaseCommand):
    help = "Commissioning: scan the buses, identify meters, read every configured device once."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        probe = actions.add_parser("probe", help="scan buses and read every device once")
        probe.add_argument("--bus", action="append", dest="buses", metavar="NAME",
                           help="only this bus of station.toml (repeatable; default all)")
        probe.add_argument("--ids", type=parse_ids, default=list(ALL_IDS),
                           help="device ids to scan, e.g. 1-30,40 (default 1-247; configured ids "
                                "are always read)")
        probe.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = load_from_settings()
            rows = run_probe(config, bus_names=options["buses"], ids=options["ids"])
        except (ConfigError, ValueError) as error:
            raise CommandError(str(error), returncode=USAGE_ERROR) from error
        if options["json"]:
            self.stdout.write(json.dumps([{**asdict(row), "ok": row.ok} for row in rows], indent=2))
        else:
            self.stdout.write(format_table(rows))
        missing = [row for row in rows if not row.ok]
        if missing:
            names = "; ".join(f"{row.configured} ({row.bus}/{row.address})" for row in missing)
            raise CommandError(f"not answering or unreadable: {names}", returncode=MISSING_DEVICE)
