"""`manage.py hw probe` against the simulator: every configured device found, identified and read;
a silent one named, with exit code 1."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.sim.processes import REPO_ROOT, SimStation
from webapp.station.management.commands.hw import parse_ids


def hw_probe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", "hw", "probe", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def sim(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([sys.executable, "manage.py", "sim", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done


def test_probe_finds_identifies_and_reads_every_device(sim_station: SimStation) -> None:
    done = hw_probe(sim_station.env, "--ids", "1-5,10,20-22,30", "--json")
    assert done.returncode == 0, done.stderr
    rows = {(row["bus"], row["address"]): row for row in json.loads(done.stdout)}
    meter1, meter2 = rows[("rs485_meters", 1)], rows[("rs485_meters", 2)]
    assert meter1["identified"] == ["acudc243"] and "kWh" in meter1["reading"]
    assert "sdm630" in meter2["identified"] and "230.0 V" in meter2["reading"]
    assert ("rs485_meters", 5) not in rows  # nobody there: silent ids are not listed
    controller = rows[("rs485_controllers", 21)]
    assert controller["configured"].startswith("controller of connector 1")
    assert "firmware" in controller["reading"]
    assert rows[("sim_tcp", 10)]["reading"].startswith("e-stop released")
    assert rows[("sim_tcp", 30)]["reading"].startswith("R_F")
    station = rows[("mercury", 1)]
    assert station["configured"] == "station meter (mercury234)" and "kWh" in station["reading"]
    modules = [row for (bus, _), row in rows.items() if bus == "can"]
    assert len(modules) == 6 and all(", off, rated 1000 V / 100 A" in row["reading"] for row in modules)
    reader = next(row for row in rows.values() if row["configured"] == "card reader (em4100)")
    assert "port opens at 9600 baud" in reader["reading"]
    assert all(row["ok"] for row in rows.values())

    table = hw_probe(sim_station.env, "--bus", "rs485_meters", "--ids", "1-2")
    assert table.returncode == 0 and "identified as" in table.stdout and "acudc243" in table.stdout


def test_a_silent_configured_device_is_named_and_exits_1(sim_station: SimStation) -> None:
    sim(sim_station.env, "offline", "meter2")
    done = hw_probe(sim_station.env, "--bus", "rs485_meters", "--ids", "1-2")
    assert done.returncode == 1
    assert "not answering or unreadable: meter of connector 2 (sdm630) (rs485_meters/2)" in done.stderr
    assert "SILENT" in done.stdout or "ERROR" in done.stdout

    sim(sim_station.env, "offline", "pm4")
    done = hw_probe(sim_station.env, "--ids", "1", "--json")
    assert done.returncode == 1
    silent = [row for row in json.loads(done.stdout) if row["configured"] == "power module pm4"]
    assert len(silent) == 1 and silent[0]["reading"].startswith("ERROR") and not silent[0]["ok"]


def test_bad_usage_exits_2(sim_station: SimStation) -> None:
    assert "unknown bus" in hw_probe(sim_station.env, "--bus", "nope").stderr
    assert hw_probe(sim_station.env, "--ids", "0-3").returncode == 2


def test_id_lists() -> None:
    assert parse_ids("1-3,10") == [1, 2, 3, 10]
    with pytest.raises(Exception, match=r"1\.\.247"):
        parse_ids("248")
