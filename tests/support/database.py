"""A migrated SQLite database per test for service subprocesses.

Services run as real processes, so they cannot see pytest-django's test database; each test
gets a file of its own, copied from one migrated once per session. Tests read it with sqlite3.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from webapp.env import REPO_ROOT


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("db-template")
    path = folder / "template.sqlite3"
    env = {**os.environ, "DATABASE_URL": sqlite_url(path), "STATION_DATA_DIR": str(folder / "data")}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO_ROOT, env=env,
                   check=True, capture_output=True, timeout=120)
    return path


@pytest.fixture
def service_db(migrated_template: Path, tmp_path: Path) -> Path:
    """This test's database file: a copy of the migrated template."""
    path = tmp_path / "station.sqlite3"
    with sqlite3.connect(migrated_template) as source, sqlite3.connect(path) as target:
        source.backup(target)
    return path


def query(path: Path, sql: str, *params: object) -> list[sqlite3.Row]:
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(sql, params).fetchall()
