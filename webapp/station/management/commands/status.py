"""`manage.py status [--json]`: the station and every connector's state, read from the bus.

The JSON shape is a contract for outside tools (ARCHITECTURE.md):
{"station": {"status", "estop", "io_online", "ocpp": {...} | null},
 "connectors": [{"id", "standard", "status", "power_w", "energy_wh", "soc", "transaction_id"}]}
`status` is "Unknown" for a key its writer never wrote; `energy_wh` is the running session's.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bus import Bus
from bus.service import REDIS_ERRORS
from webapp.station.bus_state import read_snapshot, station_config
from webapp.station.hmi_messages import ConnectorView, SnapshotPayload
from workers.common.station_config import ConfigError


class Command(BaseCommand):
    help = "Print the station's and every connector's state from the bus."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            snapshot = asyncio.run(_read())
        except REDIS_ERRORS as error:
            raise CommandError(f"cannot read the bus (is Redis running?): {error}", returncode=1) from error
        except ConfigError as error:
            raise CommandError(str(error), returncode=1) from error
        report = status_report(snapshot)
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self.stdout.write(human_table(report))


async def _read() -> SnapshotPayload:
    bus = Bus("status")
    try:
        return await read_snapshot(bus, station_config())
    finally:
        await bus.close()


def status_report(snapshot: SnapshotPayload) -> dict[str, Any]:
    """The JSON contract of `status --json`, built from the same views the HMI shows."""
    station = snapshot.station.model_dump(mode="json")
    return {"station": station, "connectors": [_connector(view) for view in snapshot.connectors]}


def _connector(view: ConnectorView) -> dict[str, Any]:
    return {
        "id": view.id,
        "standard": str(view.standard),
        "status": str(view.status),
        "power_w": view.power_w,
        "energy_wh": view.session_energy_wh,
        "soc": view.soc,
        "transaction_id": view.transaction_id,
    }


def human_table(report: dict[str, Any]) -> str:
    station = report["station"]
    ocpp = station["ocpp"]
    link = "unknown" if ocpp is None else (
        f"{'connected' if ocpp['connected'] else 'disconnected'} ({ocpp['registration']}), "
        f"{ocpp['queued_messages']} queued")
    lines = [
        f"station: {station['status']}  e-stop: {_flag(station['estop'])}  "
        f"IO module: {_flag(station['io_online'], 'online', 'offline')}",
        f"CSMS: {link}",
        "",
        f"{'id':>3} {'standard':<8} {'status':<14} {'power kW':>9} {'energy kWh':>11} {'SoC %':>6} {'tx':>8}",
    ]
    for c in report["connectors"]:
        soc = "-" if c["soc"] is None else f"{c['soc']:.0f}"
        tx = "-" if c["transaction_id"] is None else str(c["transaction_id"])
        lines.append(f"{c['id']:>3} {c['standard']:<8} {c['status']:<14} {c['power_w'] / 1000:>9.1f} "
                     f"{c['energy_wh'] / 1000:>11.2f} {soc:>6} {tx:>8}")
    return "\n".join(lines)


def _flag(value: bool | None, yes: str = "pressed", no: str = "released") -> str:
    return "unknown" if value is None else (yes if value else no)
