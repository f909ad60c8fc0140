"""`python manage.py sessions export`: the charging session log as CSV, for billing and audits.

    sessions export [--since ISO] [--until ISO] [--connector N] [--events] [--output FILE]

Sessions that started in [--since, --until) (ISO 8601 date or date and time; without a time
zone it is UTC), on one connector or all, one row each, to FILE or stdout. With --events the
timeline goes to a second CSV beside FILE, `<FILE without .csv>-events.csv` (so --events
needs --output). Columns: webapp/station/session_csv.py.

Exit codes: 0 written (also when no session matches: the header only); 1 the database or the
file cannot be used; 2 bad usage (bad date, since not before until, connector < 1).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from webapp.station import session_csv

USAGE_ERROR = 2
NOT_DONE = 1


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or time (e.g. 2026-03-01 or 2026-03-01T10:00:00Z)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _connector(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a connector number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"connector numbers start at 1, got {number}")
    return number


def events_path(output: Path) -> Path:
    """Where --events writes the timeline: beside the sessions file."""
    stem = output.name.removesuffix(".csv")
    return output.with_name(f"{stem}-events.csv")


class Command(BaseCommand):
    help = "Export the charging session log (and with --events each session's timeline) as CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        export = actions.add_parser("export", help="write sessions as CSV")
        export.add_argument("--since", type=_moment,
                            help="first start time included (ISO 8601; UTC without a zone)")
        export.add_argument("--until", type=_moment,
                            help="only sessions started before this (ISO 8601; UTC without a zone)")
        export.add_argument("--connector", type=_connector, help="only this connector")
        export.add_argument("--events", action="store_true",
                            help="also write the timelines to <FILE without .csv>-events.csv")
        export.add_argument("--output", type=Path, help="the sessions CSV file (default: stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            selection = session_csv.SessionFilter(since=options["since"], until=options["until"],
                                                  connector_id=options["connector"])
        except ValueError as error:
            raise CommandError(str(error), returncode=USAGE_ERROR) from error
        output: Path | None = options["output"]
        if options["events"] and output is None:
            raise CommandError("--events needs --output: the timelines go to a second file beside it",
                               returncode=USAGE_ERROR)
        try:
            self._export(selection, output, with_events=options["events"])
        except OSError as error:
            raise CommandError(f"cannot write {error.filename}: {error.strerror}",
                               returncode=NOT_DONE) from error
        except DatabaseError as error:
            raise CommandError(f"cannot read the session log: {error}", returncode=NOT_DONE) from error

    def _export(self, selection: session_csv.SessionFilter, output: Path | None, *,
                with_events: bool) -> None:
        sessions = session_csv.select_sessions(selection)
        if output is None:
            count = session_csv.write_sessions(self.stdout, sessions.iterator())
            self._note(f"{count} session(s)")
            return
        with output.open("w", encoding="utf-8", newline="") as sink:
            count = session_csv.write_sessions(sink, sessions.iterator())
        self._note(f"{count} session(s) written to {output}")
        if with_events:
            target = events_path(output)
            with target.open("w", encoding="utf-8", newline="") as sink:
                events = session_csv.write_events(sink, sessions)
            self._note(f"{events} event(s) written to {target}")

    def _note(self, text: str) -> None:
        """A summary on stderr (stdout may carry the CSV), not styled as an error."""
        self.stderr.write(text, style_func=str)
