"""`python -m workers.jobs.cli archive --start ISO --end ISO [--all-logs] [--enqueue [--at ISO]]`

Builds a diagnostics archive from a shell on the station: here and now by default (no worker
needed), or queued for the jobs service with `--enqueue`. Prints the JobRecord as one JSON
line; exit code 0 when the archive was built (or queued), 1 when the job failed or errored.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime


def _moment(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from error


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers.jobs.cli", description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    archive = commands.add_parser("archive", help="build a diagnostics archive of a time range")
    archive.add_argument("--start", type=_moment, required=True, help="range start, ISO 8601 with offset")
    archive.add_argument("--end", type=_moment, required=True, help="range end, ISO 8601 with offset")
    archive.add_argument("--all-logs", action="store_true", help="every log file, not only recent ones")
    archive.add_argument("--enqueue", action="store_true", help="queue it for the jobs service")
    archive.add_argument("--at", type=_moment, help="with --enqueue: run at this time (scheduler)")
    args = parser.parse_args(argv)
    if args.at is not None and not args.enqueue:
        parser.error("--at needs --enqueue")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from workers.common.bootstrap import setup

    setup("jobs-cli", log_to_files=False)
    from webapp.station.models import JobRecord
    from workers.jobs import api

    if args.enqueue:
        record = api.request_archive(args.start, args.end, all_logs=args.all_logs, at=args.at)
        record.refresh_from_db()  # a Redis outage has ended it already
    else:
        record = api.build_archive_now(args.start, args.end, all_logs=args.all_logs)
    print(json.dumps({"id": record.pk, "status": record.status, "result_file": record.result_file,
                      "log": record.log}))
    return 0 if record.status in {JobRecord.Status.FINISHED, JobRecord.Status.QUEUED} else 1


if __name__ == "__main__":
    sys.exit(main())
