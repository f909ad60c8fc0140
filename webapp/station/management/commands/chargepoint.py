"""`python manage.py chargepoint [--sim] [--only NAMES]`: run the whole station.

Order matters: the database schema first (it is the durable store every service relies on),
then station.toml (an unusable file stops here with exit code 2 instead of crash-looping
every service), then the supervisor. The exit code is the contract with ops/start.sh.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers.chargepoint.exit_codes import ExitCode
from workers.chargepoint.services import (
    ServiceSelectionError,
    ServiceSpec,
    missing_modules,
    select,
)
from workers.common.logs import setup_logging
from workers.common.station_config import ConfigError, load_from_settings
from workers.drivers.wiring import check_wiring

log = logging.getLogger("workers.chargepoint")


class Command(BaseCommand):
    help = "Run the station: migrate, check station.toml, start and supervise every service."
    requires_system_checks: list[str] = []  # the supervisor must start even if a check warns

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sim", action="store_true",
                            help="also run the simulator (every device on its real protocol)")
        parser.add_argument("--only", metavar="NAMES",
                            help="comma-separated subset of services to run (field debugging)")

    def handle(self, *args: Any, sim: bool, only: str | None, **options: Any) -> None:
        setup_logging("chargepoint", settings.STATION_ENV.logs_dir)
        specs = self._services(sim, only)
        call_command("migrate", interactive=False, verbosity=0)
        log.info("database schema up to date")
        try:
            config = load_from_settings()
            check_wiring(config, settings.STATION_ENV.station_config)
        except ConfigError as error:
            raise CommandError(str(error), returncode=ExitCode.CONFIG_ERROR) from error
        log.info("station.toml: %s, %d connector(s)", config.station.name, len(config.connectors))
        missing = missing_modules(specs)
        if missing:
            raise CommandError(f"installation incomplete: cannot run {', '.join(missing)} "
                               "(python -m finds no such module)", returncode=ExitCode.CONFIG_ERROR)
        sys.exit(self._supervise(specs))

    def _services(self, sim: bool, only: str | None) -> tuple[ServiceSpec, ...]:
        try:
            specs = select(sim=sim, only=only.split(",") if only is not None else None)
        except ServiceSelectionError as error:
            raise CommandError(str(error), returncode=ExitCode.CONFIG_ERROR) from error
        return specs

    def _supervise(self, specs: tuple[ServiceSpec, ...]) -> int:
        from workers.chargepoint.supervisor import Supervisor

        try:
            return Supervisor(specs).main()
        except Exception:
            log.exception("chargepoint crashed; every service was killed")
            return ExitCode.CRASH
