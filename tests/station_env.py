"""pytest plugin loaded before Django (`-p tests.station_env`): gives the test session its own
data folder and a free port for its private redis-server, so Django settings (read once at
import) and every subprocess the tests start point at them."""

from __future__ import annotations

import os
import tempfile

from workers.common.redis_server import free_port

if "STATION_TEST_SESSION" not in os.environ:
    os.environ["STATION_TEST_SESSION"] = "1"
    os.environ["STATION_DATA_DIR"] = tempfile.mkdtemp(prefix="station-test-")
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    os.environ["BUS_PREFIX"] = "test"
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
