"""The process environment of tests/bench/control.py's station: set before Django is imported.

Django reads its settings once, at setup, from the environment (webapp/env.py), so this module
touches only the standard library and workers/common/redis_server.py. It gives the run a data
folder of its own (database, sim state, run files), a private redis-server on a free port,
a migrated SQLite database in that folder, and a copy of ops/station.sim.toml whose fixed
Modbus TCP port is replaced by a free one, so the bench runs beside a simulator or a test run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workers.common.redis_server import free_port, start_redis, stop_redis

REPO = Path(__file__).resolve().parents[2]
SIM_CONFIG = REPO / "ops" / "station.sim.toml"
BUS_PREFIX = "bench"
_TCP_PORT = re.compile(r"^port = \d+$", re.MULTILINE)


def station_config_copy(folder: Path) -> Path:
    """ops/station.sim.toml with a free port for its one Modbus TCP bus."""
    text = SIM_CONFIG.read_text(encoding="utf-8")
    ports = _TCP_PORT.findall(text)
    if len(ports) != 1:
        raise RuntimeError(f"{SIM_CONFIG}: expected one `port = N` line (the Modbus TCP bus), found {ports}")
    path = folder / "station.toml"
    path.write_text(_TCP_PORT.sub(f"port = {free_port()}", text), encoding="utf-8")
    return path


@contextmanager
def bench_process(folder: Path) -> Iterator[str]:
    """Environment, redis-server and migrated database for this process; yields the Redis URL.
    The redis-server stops on exit."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    os.environ.update({
        "STATION_DATA_DIR": str(folder / "data"),
        "DATABASE_URL": f"sqlite:///{folder / 'station.sqlite3'}",
        "STATION_CONFIG": str(station_config_copy(folder)),
        "REDIS_URL": url,
        "BUS_PREFIX": BUS_PREFIX,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
    })
    redis_process = start_redis(port, folder / "redis")
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        yield url
    finally:
        stop_redis(redis_process)
