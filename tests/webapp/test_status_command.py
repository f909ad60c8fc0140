"""`manage.py status [--json]`: the station and every connector's state, read from the bus."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from typing import Any

from django.core.management import call_command

from bus import Bus, contract
from bus.contract import KeySpec
from bus.enums import ConnectorStatus, Standard
from bus.messages import ConnectorState, OcppLink, OcppTransaction, StationState
from webapp.env import REPO_ROOT
from workers.common.redis_server import free_port


def put(spec: KeySpec[Any], value: Any, **params: Any) -> None:
    async def write() -> None:
        bus = Bus("test")
        try:
            await bus.set(spec, value, **params)
        finally:
            await bus.close()

    asyncio.run(write())


def status(*args: str) -> str:
    out = io.StringIO()
    call_command("status", *args, stdout=out)
    return out.getvalue()


def test_json_reports_the_station_and_every_connector_from_the_bus(redis_client) -> None:
    put(contract.STATION, StationState(status=ConnectorStatus.AVAILABLE, estop=False, io_online=True))
    put(contract.OCPP_LINK, OcppLink(connected=True, registration="Accepted", queued_messages=3,
                                     csms_url="ws://cp1:pw@127.0.0.1:9000/ocpp"))
    put(contract.CONNECTOR, ConnectorState(
        connector_id=1, standard=Standard.CCS, status=ConnectorStatus.CHARGING, power_w=48_000,
        meter_wh=900_000, session_energy_wh=5_250, soc=61.5, session_id="s1"), connector_id=1)
    put(contract.OCPP_TRANSACTION, OcppTransaction(connector_id=1, session_id="s1", transaction_id=7),
        connector_id=1)

    report = json.loads(status("--json"))

    assert report == {
        "station": {
            "status": "Available", "estop": False, "io_online": True,
            "ocpp": {"connected": True, "registration": "Accepted", "queued_messages": 3,
                     "csms_url": "ws://127.0.0.1:9000/ocpp"},
        },
        "connectors": [
            {"id": 1, "standard": "CCS", "status": "Charging", "power_w": 48_000, "energy_wh": 5_250,
             "soc": 61.5, "transaction_id": 7},
            {"id": 2, "standard": "Type2", "status": "Unknown", "power_w": 0, "energy_wh": 0,
             "soc": None, "transaction_id": None},
            {"id": 3, "standard": "CHAdeMO", "status": "Unknown", "power_w": 0, "energy_wh": 0,
             "soc": None, "transaction_id": None},
            {"id": 4, "standard": "GBT", "status": "Unknown", "power_w": 0, "energy_wh": 0,
             "soc": None, "transaction_id": None},
        ],
    }


def test_json_says_unknown_when_no_service_ever_wrote_a_key(redis_client) -> None:
    report = json.loads(status("--json"))

    assert report["station"] == {"status": "Unknown", "estop": None, "io_online": None, "ocpp": None}
    assert [c["status"] for c in report["connectors"]] == ["Unknown"] * 4


def test_table_shows_one_line_per_connector(redis_client) -> None:
    put(contract.STATION, StationState(status=ConnectorStatus.UNAVAILABLE, estop=True, io_online=True))
    put(contract.CONNECTOR, ConnectorState(connector_id=2, standard=Standard.TYPE2,
                                           status=ConnectorStatus.FAULTED, info="estop"), connector_id=2)

    table = status()

    assert "station: Unavailable  e-stop: pressed" in table
    rows = [line.split() for line in table.splitlines() if line[:3].strip().isdigit()]
    assert [row[:3] for row in rows] == [["1", "CCS", "Unknown"], ["2", "Type2", "Faulted"],
                                         ["3", "CHAdeMO", "Unknown"], ["4", "GBT", "Unknown"]]


def test_redis_down_prints_the_reason_on_stderr_and_exits_1(redis_client) -> None:
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens
    result = subprocess.run([sys.executable, "manage.py", "status", "--json"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert result.stdout == ""
    assert "cannot read the bus (is Redis running?)" in result.stderr
    assert "Traceback" not in result.stderr
