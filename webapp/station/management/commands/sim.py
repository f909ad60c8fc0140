"""`python manage.py sim ACTION ...`: drive the simulator from outside, over the bus.

    sim plug N [--standard ccs|chademo|gbt|type2] [--soc P] [--target-soc P] [--capacity-kwh K]
               [--max-kw W]   (--max-power-kw is the same option)
    sim unplug N
    sim pause N            (the EV stops taking energy: EV-side pause)
    sim resume N
    sim swipe UID          (hex: 10 digits for an EM4100 reader; 8, 14 or 20 for a PN532)
    sim estop on|off
    sim door open|close
    sim list               (every simulated device, online or not, with its fault kinds)
    sim fault DEVICE KIND  (e.g. `sim fault meter1 crc`, `sim fault controller1 insulation`)
    sim clear DEVICE       (every fault of the device)
    sim offline DEVICE     (it stops answering on its wire, as if unplugged)
    sim online DEVICE

Exit codes: 0 done; 1 the simulator is not answering (not running, Redis down) or refused
the action; 2 bad usage (unknown action, unknown connector, bad value).
"""

from __future__ import annotations

import argparse
import asyncio
import string

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bus import contract
from bus.messages import CommandResult, Empty, SimAction, SimDeviceList
from webapp.station.management.cli import NOT_DONE, ask, percent, positive
from workers.common.station_config import ConfigError, load_from_settings

USAGE_ERROR = 2
USAGE_REFUSALS = frozenset({"unknown_connector", "unknown_device", "unknown_fault"})
SIM_HINT = "is the simulator running? `manage.py chargepoint --sim` starts it"


UID_DIGITS = (8, 10, 14, 20)  # ISO 14443 4/7/10-byte UIDs (PN532) and EM4100's 5 bytes


def _uid(text: str) -> str:
    if len(text) not in UID_DIGITS or not all(c in string.hexdigits for c in text):
        raise argparse.ArgumentTypeError(f"a card id is 10 hex digits (EM4100) or 8, 14 or 20 "
                                         f"(ISO 14443, PN532), got {text!r}")
    return text.upper()


class Command(BaseCommand):
    help = ("Drive the simulator: plug/unplug an EV, present an RFID card, press/release e-stop, "
            "open/close the door, list devices, fault a device or take it offline.")

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        plug = actions.add_parser("plug", help="plug an EV into connector N")
        plug.add_argument("connector", type=int)
        plug.add_argument("--soc", type=percent, help="EV state of charge, %% (default 20)")
        plug.add_argument("--target-soc", type=percent, help="SoC at which the EV stops, %% (default 80)")
        plug.add_argument("--capacity-kwh", type=positive, help="battery size, kWh (default 60)")
        plug.add_argument("--max-kw", "--max-power-kw", dest="max_power_kw", type=positive,
                          help="most power the EV takes, kW (default 100 DC, 11 AC)")
        plug.add_argument("--standard", choices=["ccs", "chademo", "gbt", "type2"],
                          help="the EV's standard (default: the connector's; another one is refused)")
        for name, text in (("pause", "the EV on connector N stops taking energy"),
                           ("resume", "the paused EV on connector N takes energy again")):
            actions.add_parser(name, help=text).add_argument("connector", type=int)
        unplug = actions.add_parser("unplug", help="unplug the EV from connector N")
        unplug.add_argument("connector", type=int)
        swipe = actions.add_parser("swipe", help="hold a card in front of the reader")
        swipe.add_argument("uid", type=_uid, help="EM4100 card id, 10 hex digits, e.g. 0A00B1C2D3")
        estop = actions.add_parser("estop", help="press (on) or release (off) the emergency stop")
        estop.add_argument("state", choices=["on", "off"])
        door = actions.add_parser("door", help="open or close the cabinet door")
        door.add_argument("position", choices=["open", "close"])
        actions.add_parser("list", help="name every simulated device with its fault kinds")
        fault = actions.add_parser("fault", help="make a device report one of its faults")
        fault.add_argument("device", help="a name `sim list` shows, e.g. meter1, controller2, io, pm3")
        fault.add_argument("kind", help="one of the device's fault kinds (`sim list`)")
        for name, text in (("clear", "remove every fault of a device"),
                           ("offline", "the device stops answering on its wire"),
                           ("online", "the device answers again")):
            actions.add_parser(name, help=text).add_argument("device")

    def handle(self, *args: object, **options: object) -> None:
        if options["action"] == "list":
            self.stdout.write(_device_table(asyncio.run(_list())))
            return
        request = self._request(options)
        if request.connector_id is not None:
            self._check_connector(request.connector_id)
        result = asyncio.run(_send(request))
        if not result.accepted:
            code = USAGE_ERROR if result.reason in USAGE_REFUSALS else NOT_DONE
            raise CommandError(f"the simulator refused {request.action}: {result.reason}", returncode=code)
        self.stdout.write(f"sim {request.action}: done")

    def _request(self, options: dict[str, object]) -> SimAction:
        action = options["action"]
        if action == "plug":
            return SimAction(action="plug", connector_id=options["connector"], soc=options["soc"],
                             target_soc=options["target_soc"], capacity_kwh=options["capacity_kwh"],
                             max_power_kw=options["max_power_kw"], standard=options["standard"])
        if action in ("pause", "resume"):
            return SimAction(action=action, connector_id=options["connector"])
        if action == "unplug":
            return SimAction(action="unplug", connector_id=options["connector"])
        if action == "swipe":
            return SimAction(action="swipe", uid=options["uid"])
        if action == "door":
            return SimAction(action="door", open=options["position"] == "open")
        if action == "fault":
            return SimAction(action="fault", device=options["device"], kind=options["kind"])
        if action in ("clear", "offline", "online"):
            return SimAction(action=action, device=options["device"])
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
    return await ask("manage.sim", contract.SIM, request, what=f"the simulator did not do {request.action}",
                     hint=SIM_HINT)


async def _list() -> SimDeviceList:
    return await ask("manage.sim", contract.SIM_DEVICES, Empty(), what="the simulator did not do list",
                     hint=SIM_HINT)


def _device_table(listing: SimDeviceList) -> str:
    width = max((len(device.name) for device in listing.devices), default=6)
    lines = [f"{'device':<{width}}  {'state':<7}  faults"]
    for device in listing.devices:
        state = "online" if device.online else "offline"
        lines.append(f"{device.name:<{width}}  {state:<7}  {', '.join(device.fault_kinds) or '-'}")
    return "\n".join(lines)
