"""The diagnostics archive: what a service engineer needs about a time range, in one zip.

Contents (under STATION_DATA_DIR/archives/):
- `logs/<file>`: the log files of STATION_DATA_DIR/logs/ modified at or after the range's
  start (a log file is appended to, so a file last written after the range may still hold
  lines from inside it), or every log file with `all_logs`;
- `sessions.csv`: the ChargingSession rows that overlap the range (a session still running
  counts as running until now), one column per model field;
- `station.json`: the range, station.toml as written, and the software versions.

The zip is written as `<name>.part` and renamed when complete, so the download view never
serves half an archive.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import zipfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError, model_validator

from webapp.env import StationEnv
from webapp.station.models import ChargingSession
from workers.jobs.base import JobFailed, JobLog

VERSIONED_PACKAGES = (
    "Django", "rq", "django-rq", "redis", "pydantic", "ocpp", "websockets", "pymodbus",
    "pyserial", "channels", "uvicorn",
)
ARCHIVE_PREFIX = "diagnostics"
PARTIAL_SUFFIX = ".part"


class ArchiveRequest(BaseModel):
    """The job's parameters: one rule for the admin form, the CLI and the job itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: AwareDatetime
    end: AwareDatetime
    all_logs: bool = False

    @model_validator(mode="after")
    def _start_before_end(self) -> ArchiveRequest:
        if self.start >= self.end:
            raise ValueError(f"start ({self.start.isoformat()}) must be before end ({self.end.isoformat()})")
        return self

    def to_params(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_request(params: dict[str, Any]) -> ArchiveRequest:
    """The job's params as a checked request; a bad range is the operator's to fix (JobFailed)."""
    try:
        return ArchiveRequest.model_validate(params)
    except ValidationError as error:
        raise JobFailed(f"invalid archive request: {describe(error)}") from error


def describe(error: ValidationError) -> str:
    """One part per problem, naming the field if any: 'start: Input should have timezone info'."""
    parts = []
    for problem in error.errors():
        where = ".".join(str(item) for item in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def build_archive(job: JobLog, params: dict[str, Any]) -> str:
    """The job's handler: writes the zip and returns its path relative to STATION_DATA_DIR."""
    request = parse_request(params)
    env: StationEnv = settings.STATION_ENV
    target = write_archive(job, request, archive_name(request, job.record_id))
    return str(target.relative_to(env.data_dir))


def write_archive(job: JobLog, request: ArchiveRequest, name: str) -> Path:
    """Write the zip `name` under the archives folder (also the diagnostics upload's file)."""
    env: StationEnv = settings.STATION_ENV
    env.archives_dir.mkdir(parents=True, exist_ok=True)
    target = env.archives_dir / name
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    job.info("building %s for %s .. %s", target.name, request.start.isoformat(), request.end.isoformat())
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            _add_logs(archive, env.logs_dir, request, job)
            _add_sessions(archive, request, job)
            _add_station_info(archive, env, request, job)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)  # only left over when writing failed
    job.info("archive ready: %s (%d bytes)", target.name, target.stat().st_size)
    return target


def archive_name(request: ArchiveRequest, record_id: int) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    start, end = (moment.astimezone(UTC) for moment in (request.start, request.end))
    return f"{ARCHIVE_PREFIX}-{start:{fmt}}-{end:{fmt}}-{record_id}.zip"


def _add_logs(archive: zipfile.ZipFile, logs_dir: Path, request: ArchiveRequest, job: JobLog) -> None:
    if not logs_dir.is_dir():
        job.warning("no log folder at %s", logs_dir)
        return
    since = request.start.timestamp()
    added = 0
    for path in sorted(logs_dir.iterdir()):
        try:
            if not path.is_file() or (not request.all_logs and path.stat().st_mtime < since):
                continue
            archive.write(path, f"logs/{path.name}")
        except FileNotFoundError:
            job.warning("log file %s was rotated away before it could be added", path.name)
            continue
        added += 1
    job.info("added %d log file(s)%s", added, "" if request.all_logs else " modified since the start")


def sessions_in_range(request: ArchiveRequest) -> Any:
    """ChargingSession rows overlapping [start, end]; an unfinished one runs until now."""
    return (ChargingSession.objects
            .filter(started_at__lte=request.end)
            .filter(Q(stopped_at__gte=request.start) | Q(stopped_at__isnull=True))
            .order_by("started_at", "pk"))


def _add_sessions(archive: zipfile.ZipFile, request: ArchiveRequest, job: JobLog) -> None:
    columns = [field.name for field in ChargingSession._meta.concrete_fields]
    count = 0
    with io.TextIOWrapper(archive.open("sessions.csv", "w"), encoding="utf-8", newline="") as text:
        writer = csv.writer(text)
        writer.writerow(columns)
        for values in sessions_in_range(request).values_list(*columns).iterator():
            writer.writerow([_cell(value) for value in values])
            count += 1
    job.info("added sessions.csv with %d session(s)", count)


def _cell(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _add_station_info(archive: zipfile.ZipFile, env: StationEnv, request: ArchiveRequest,
                      job: JobLog) -> None:
    info = station_info(env, request)
    if info["station_toml_error"]:
        job.warning("station.toml left out: %s", info["station_toml_error"])
    archive.writestr("station.json", json.dumps(info, indent=2))


def station_info(env: StationEnv, request: ArchiveRequest) -> dict[str, Any]:
    """The range, station.toml as written (or why it could not be read) and versions."""
    try:
        toml_text: str | None = env.station_config.read_text(encoding="utf-8")
        toml_error = None
    except OSError as error:
        toml_text, toml_error = None, f"cannot read {env.station_config}: {error.strerror}"
    return {
        "generated_at": timezone.now().isoformat(),
        "range": request.to_params(),
        "station_config_path": str(env.station_config),
        "station_toml": toml_text,
        "station_toml_error": toml_error,
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found
