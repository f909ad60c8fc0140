"""`python manage.py limit ACTION ...`: the operator's power limit on the whole station or on
one connector, put on the bus where smartw obeys it from its next cycle (no restart).

    limit set --station|--connector N (--kw X | --amps Y) [--for SECONDS]
    limit clear --station|--connector N
    limit show        (every limit in force, OCPP's and the operator's, with source and expiry)

It writes contract.OPERATOR_LIMIT (source "operator"), the key the configurator writes too;
OCPP's limits have keys of their own, so neither overwrites the other and smartw applies the
lowest. Amperes are per phase; smartw counts them with 230 V per phase over an AC connector's
wired phases, three for a DC connector and for the station. A limit set with --for expires
then, in the message and as the key's TTL. Redis keeps no data across a restart, so a limit
without --for lasts until it is cleared or Redis restarts.

Exit codes: 0 done; 1 the bus (Redis) or station.toml cannot be read; 2 bad usage (a negative
or non-numeric value, no scope or both, an unknown connector).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bus import Bus, contract
from bus.client import KeyRead
from bus.messages import ChargingLimit, LimitSource, utcnow
from bus.service import REDIS_ERRORS
from webapp.station.management.cli import NOT_DONE, non_negative, number
from workers.common.station_config import ConfigError, load_from_settings

USAGE_ERROR = 2
STATION_ID = 0  # connector_id of a station-wide limit


def _seconds(text: str) -> float:
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0 seconds")
    return value


def _add_scope(parser: CommandParser) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--station", action="store_true", help="the whole station (OCPP connector 0)")
    scope.add_argument("--connector", type=int, metavar="N", help="connector N of station.toml")


class Command(BaseCommand):
    help = "Set, clear or show the operator's power limit on the station or a connector."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        set_limit = actions.add_parser("set", help="limit the station or a connector")
        _add_scope(set_limit)
        value = set_limit.add_mutually_exclusive_group(required=True)
        value.add_argument("--kw", type=non_negative, help="total power, kW")
        value.add_argument("--amps", type=non_negative, help="current per phase, A")
        set_limit.add_argument("--for", dest="for_s", type=_seconds, metavar="SECONDS",
                               help="expire after this many seconds (default: until cleared)")
        _add_scope(actions.add_parser("clear", help="remove the operator's limit"))
        actions.add_parser("show", help="every limit in force with its source and expiry")

    def handle(self, *args: Any, **options: Any) -> None:
        connector_ids = self._connector_ids()
        action = options["action"]
        if action == "show":
            self.stdout.write(self._run(_show(connector_ids, utcnow())))
            return
        scope = self._scope(options, connector_ids)
        if action == "clear":
            self.stdout.write(self._run(_clear(scope)))
            return
        now = utcnow()
        limit = ChargingLimit(
            connector_id=scope, source=LimitSource.OPERATOR, set_at=now,
            limit_w=None if options["kw"] is None else options["kw"] * 1000,
            limit_a=options["amps"],
            expires_at=None if options["for_s"] is None else now + timedelta(seconds=options["for_s"]))
        self.stdout.write(self._run(_set(limit, now)))

    def _connector_ids(self) -> list[int]:
        try:
            return sorted(c.id for c in load_from_settings().connectors)
        except ConfigError as error:
            raise CommandError(str(error), returncode=NOT_DONE) from error

    def _scope(self, options: dict[str, Any], connector_ids: Sequence[int]) -> int:
        if options["station"]:
            return STATION_ID
        connector_id = options["connector"]
        if connector_id not in connector_ids:
            raise CommandError(f"unknown connector {connector_id} (station.toml has {list(connector_ids)}; "
                               "--station limits the whole station)", returncode=USAGE_ERROR)
        return connector_id

    def _run(self, work: Any) -> str:
        try:
            return asyncio.run(work)
        except REDIS_ERRORS as error:
            raise CommandError(f"cannot reach the bus (Redis): {error}", returncode=NOT_DONE) from error


async def _set(limit: ChargingLimit, now: datetime) -> str:
    bus = Bus("manage.limit")
    try:
        await bus.set(contract.OPERATOR_LIMIT, limit, ttl_s=limit.ttl_s(now), connector_id=limit.connector_id)
    finally:
        await bus.close()
    until = "until cleared" if limit.expires_at is None else f"until {_expiry(limit, now)}"
    return f"operator limit on {_scope_name(limit.connector_id)}: {_values(limit)}, {until}"


async def _clear(scope: int) -> str:
    bus = Bus("manage.limit")
    try:
        await bus.delete(contract.OPERATOR_LIMIT, connector_id=scope)
    finally:
        await bus.close()
    return f"operator limit on {_scope_name(scope)} cleared"


async def _show(connector_ids: Sequence[int], now: datetime) -> str:
    scopes = [STATION_ID, *connector_ids]
    bus = Bus("manage.limit")
    try:
        reads = await bus.get_many([(spec, {"connector_id": scope}) for scope in scopes
                                    for spec in (contract.OCPP_LIMIT, contract.OPERATOR_LIMIT)])
    finally:
        await bus.close()
    return _table(reads, now)


def _table(reads: Sequence[KeyRead[ChargingLimit]], now: datetime) -> str:
    lines = [f"{'scope':<12} {'source':<22} {'limit':<24} expires"]
    for read in reads:
        if read.error is not None:
            first = read.error.errors(include_url=False)[0]
            lines.append(f"{read.name}: not a valid limit, smartw ignores it ({first['msg']})")
        elif read.value is not None and read.value.active(now):
            limit = read.value
            lines.append(f"{_scope_name(limit.connector_id):<12} {limit.source.value:<22} "
                         f"{_values(limit):<24} {_expiry(limit, now)}")
    if len(lines) == 1:
        return "no limit in force"
    return "\n".join(lines)


def _scope_name(scope: int) -> str:
    return "station" if scope == STATION_ID else f"connector {scope}"


def _values(limit: ChargingLimit) -> str:
    parts = [f"{limit.limit_w / 1000:g} kW" if limit.limit_w is not None else "",
             f"{limit.limit_a:g} A/phase" if limit.limit_a is not None else ""]
    return " and ".join(part for part in parts if part)


def _expiry(limit: ChargingLimit, now: datetime) -> str:
    if limit.expires_at is None:
        return "never"
    left_s = (limit.expires_at - now).total_seconds()
    return f"{limit.expires_at.isoformat(timespec='seconds')} (in {left_s:.0f} s)"
