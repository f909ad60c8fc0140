"""`manage.py sessions export`: the CSV files it writes, and its exit codes (run as a real
process where the exit code is the point)."""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.support.database import sqlite_url
from webapp.env import REPO_ROOT
from webapp.station.models import ChargingSession, SessionEvent

STARTED = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def run(*args: str, database: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": sqlite_url(database)}
    return subprocess.run([sys.executable, "manage.py", "sessions", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def add_session(session_id: str, connector_id: int = 1) -> ChargingSession:
    row = ChargingSession.objects.create(
        session_id=session_id, connector_id=connector_id, standard="Type2", id_tag="TAG,1",
        started_at=STARTED, stopped_at=datetime(2026, 3, 1, 10, 10, tzinfo=UTC), meter_start_wh=0,
        meter_stop_wh=2000, energy_wh=2000, stop_reason="EVDisconnected")
    SessionEvent.objects.create(session=row, at=STARTED, kind=SessionEvent.Kind.STARTED,
                                detail="id tag TAG,1")
    return row


@pytest.mark.django_db
def test_export_with_events_writes_the_sessions_file_and_the_timeline_beside_it(tmp_path: Path) -> None:
    add_session("s1", connector_id=1)
    add_session("s2", connector_id=2)
    target = tmp_path / "march.csv"
    errors = io.StringIO()

    call_command("sessions", "export", "--since", "2026-03-01", "--until", "2026-03-02T00:00:00+00:00",
                 "--connector", "2", "--events", "--output", str(target), stderr=errors)

    sessions = list(csv.DictReader(target.open(newline="")))
    events = list(csv.DictReader((tmp_path / "march-events.csv").open(newline="")))
    assert [(row["session_id"], row["id_tag"], row["energy_kwh"]) for row in sessions] == [
        ("s2", "TAG,1", "2.000")]
    assert [(row["session_id"], row["kind"]) for row in events] == [("s2", "started")]
    assert "1 session(s) written to" in errors.getvalue() and "1 event(s) written to" in errors.getvalue()


@pytest.mark.django_db
def test_events_without_an_output_file_is_a_usage_error() -> None:
    with pytest.raises(CommandError, match="--events needs --output") as raised:
        call_command("sessions", "export", "--events", stdout=io.StringIO())
    assert raised.value.returncode == 2


def insert_session(database: Path) -> None:
    with sqlite3.connect(database) as db:
        db.execute("INSERT INTO station_chargingsession (session_id, connector_id, standard, id_tag, "
                   "started_at, meter_start_wh, energy_wh, peak_power_w, stop_reason, stop_id_tag, "
                   "start_published, stop_published) VALUES "
                   "('s1', 1, 'CCS', 'A,B', '2026-03-01 10:00:00', 5.0, 0, 0, '', '', 1, 0)")


def test_export_to_stdout_exits_0_with_the_csv_and_an_empty_range_gives_the_header(
        service_db: Path) -> None:
    insert_session(service_db)

    result = run("export", "--since", "2026-03-01T09:00Z", database=service_db)
    empty = run("export", "--since", "2026-03-02", database=service_db)

    assert result.returncode == 0, result.stderr
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert (row["session_id"], row["id_tag"], row["started_at"]) == ("s1", "A,B", "2026-03-01T10:00:00.000Z")
    assert result.stderr.strip() == "1 session(s)"
    assert (empty.returncode, empty.stdout.count("\n"), empty.stderr.strip()) == (0, 1, "0 session(s)")


@pytest.mark.parametrize(("args", "message"), [
    (("--since", "yesterday"), "argument --since: 'yesterday' is not an ISO 8601 date or time"),
    (("--since", "2026-03-02", "--until", "2026-03-01"),
     "since (2026-03-02T00:00:00.000Z) must be before until"),
    (("--connector", "0"), "argument --connector: connector numbers start at 1, got 0"),
])
def test_bad_usage_exits_2_with_the_reason(service_db: Path, args: tuple[str, ...], message: str) -> None:
    result = run("export", *args, database=service_db)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_an_unwritable_output_file_exits_1(service_db: Path, tmp_path: Path) -> None:
    result = run("export", "--output", str(tmp_path / "missing-folder" / "x.csv"), database=service_db)
    assert result.returncode == 1
    assert "cannot write" in result.stderr and "No such file or directory" in result.stderr
