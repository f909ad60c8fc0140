"""The diagnostics archive job run synchronously (as the CLI does): its zip and its record."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest

from tests.jobs.conftest import RANGE_END, RANGE_START
from webapp.env import StationEnv
from webapp.station.models import JobRecord
from workers.jobs.api import build_archive_now
from workers.jobs.base import JobKind
from workers.jobs.runner import run_sync

pytestmark = pytest.mark.django_db


def open_archive(env: StationEnv, record: JobRecord) -> zipfile.ZipFile:
    return zipfile.ZipFile(env.data_dir / record.result_file)


def session_ids(archive: zipfile.ZipFile) -> list[str]:
    rows = list(csv.DictReader(io.StringIO(archive.read("sessions.csv").decode())))
    return [row["session_id"] for row in rows]


def test_archive_holds_the_sessions_of_the_range_the_recent_logs_and_the_station_config(
        station_env, sessions, log_files) -> None:
    record = build_archive_now(RANGE_START, RANGE_END)

    assert record.status == JobRecord.Status.FINISHED, record.log
    assert record.result_file.startswith("archives/diagnostics-20260301T100000Z-20260301T120000Z-")
    with open_archive(station_env, record) as archive:
        assert session_ids(archive) == ["across_start", "inside", "running"]
        assert sorted(archive.namelist()) == ["logs/info.log", "sessions.csv", "station.json"]
        assert archive.read("logs/info.log") == log_files["current"].read_bytes()
        info = json.loads(archive.read("station.json"))
    assert info["station_toml"] == station_env.station_config.read_text()
    assert info["versions"]["Django"] and info["versions"]["python"]
    assert info["range"]["start"].startswith("2026-03-01T10:00:00")
    assert "added sessions.csv with 3 session(s)" in record.log
    assert record.started_at and record.finished_at


def test_sessions_csv_has_one_column_per_field_with_iso_times(station_env, sessions) -> None:
    record = build_archive_now(RANGE_START, RANGE_END)
    with open_archive(station_env, record) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("sessions.csv").decode())))
    inside = next(row for row in rows if row["session_id"] == "inside")
    assert inside["started_at"] == sessions["inside"].started_at.isoformat()
    assert inside["energy_wh"] == "1000.0"
    assert next(row for row in rows if row["session_id"] == "running")["stopped_at"] == ""


def test_all_logs_also_takes_log_files_last_written_before_the_range(station_env, log_files) -> None:
    record = build_archive_now(RANGE_START, RANGE_END, all_logs=True)
    with open_archive(station_env, record) as archive:
        assert {"logs/info.log", "logs/info.log.1"} <= set(archive.namelist())


def test_start_after_end_fails_the_job_with_the_reason_and_writes_no_file(station_env) -> None:
    record = build_archive_now(RANGE_END, RANGE_START)

    assert record.status == JobRecord.Status.FAILED
    assert ("failed: invalid archive request: start (2026-03-01T12:00:00+00:00) must be before end "
            "(2026-03-01T10:00:00+00:00)") in record.log
    assert "Traceback" not in record.log
    assert record.result_file == ""
    assert not station_env.archives_dir.exists() or not any(station_env.archives_dir.iterdir())


def test_a_range_without_timezone_fails_with_a_clear_message(station_env) -> None:
    record = run_sync(JobKind.DIAGNOSTICS_ARCHIVE,
                      {"start": "2026-03-01T10:00:00", "end": "2026-03-01T12:00:00+00:00"})
    assert record.status == JobRecord.Status.FAILED
    assert "start: Input should have timezone info" in record.log


def test_unexpected_params_fail_the_job_naming_them(station_env) -> None:
    record = run_sync(JobKind.DIAGNOSTICS_ARCHIVE,
                      {"start": RANGE_START.isoformat(), "end": RANGE_END.isoformat(), "upload": True})
    assert record.status == JobRecord.Status.FAILED
    assert "upload: Extra inputs are not permitted" in record.log


def test_a_crash_errors_the_job_with_its_traceback_and_leaves_no_partial_file(station_env) -> None:
    station_env.archives_dir.write_text("a file where the archive folder should be")

    record = build_archive_now(RANGE_START, RANGE_END)

    assert record.status == JobRecord.Status.ERRORED
    assert "Traceback (most recent call last)" in record.log
    assert "FileExistsError" in record.log
    assert record.result_file == ""


def test_an_archive_is_never_left_half_written(station_env, sessions) -> None:
    record = build_archive_now(RANGE_START, RANGE_END)
    names = [path.name for path in station_env.archives_dir.iterdir()]
    assert names == [Path(record.result_file).name]


def test_unknown_job_kind_is_refused_before_a_row_is_written() -> None:
    with pytest.raises(ValueError, match="diagnostic_archive"):
        run_sync("diagnostic_archive", {})  # type: ignore[arg-type]
    assert not JobRecord.objects.exists()
