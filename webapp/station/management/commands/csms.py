"""`python manage.py csms [--host H] [--port P]`: run the development CSMS in the foreground.

ops/run-sim.sh starts it so the simulated station has a central system to talk to. Defaults
come from OCPP_CSMS_URL (ws://127.0.0.1:9000/ocpp unless set), so the station finds it
without configuration. Every CALL received is logged at INFO; Ctrl-C or SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers.common.logs import setup_logging
from workers.sim.csms import Csms, CsmsBehaviour, run_until_stopped


class Command(BaseCommand):
    help = "Run the development OCPP 1.6-J central system (CSMS) built on the ocpp library."

    def add_arguments(self, parser: CommandParser) -> None:
        default = urlsplit(settings.STATION_ENV.csms_url)
        parser.add_argument("--host", default=default.hostname or "127.0.0.1",
                            help="address to listen on (default: the host of OCPP_CSMS_URL)")
        parser.add_argument("--port", type=int, default=default.port or 9000,
                            help="TCP port (default: the port of OCPP_CSMS_URL)")
        parser.add_argument("--path", default=default.path or "/ocpp",
                            help="URL path before /<charge point id> (default: that of OCPP_CSMS_URL)")
        parser.add_argument("--heartbeat-interval", type=int, default=300,
                            help="interval given in BootNotification.conf, s")
        parser.add_argument("--reject-id-tag", action="append", default=[], metavar="ID_TAG",
                            help="answer this idTag Invalid (repeatable)")

    def handle(self, *args: object, **options: object) -> None:
        port = int(options["port"])  # type: ignore[call-overload]
        if not 0 <= port < 65536:
            raise CommandError(f"--port must be a TCP port number, got {port}")
        interval = int(options["heartbeat_interval"])  # type: ignore[call-overload]
        if interval < 0:
            raise CommandError("--heartbeat-interval must be >= 0")
        setup_logging("csms", None, console_level=logging.INFO)
        behaviour = CsmsBehaviour(heartbeat_interval_s=interval,
                                  rejected_id_tags=set(options["reject_id_tag"]))  # type: ignore[call-overload]
        csms = Csms(str(options["host"]), port, str(options["path"]), behaviour)
        try:
            asyncio.run(self._serve(csms))
        except OSError as error:
            raise CommandError(f"cannot listen on {options['host']}:{port}: {error.strerror}") from error

    async def _serve(self, csms: Csms) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_until_stopped(csms, stop)
