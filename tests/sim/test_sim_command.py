"""`python manage.py sim ...`: exit codes and messages, with and without a running simulator."""

from __future__ import annotations

import subprocess
import sys

from pymodbus.client import ModbusTcpClient

from tests.sim.processes import REPO_ROOT, SimStation, StationFiles, service_env
from tests.support.waiting import wait_until


def manage_sim(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", "sim", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


BAD_USAGE = [
    (["fly", "1"], "invalid choice: 'fly'"),
    (["plug", "7"], "unknown connector 7 (station.toml has [1, 2])"),
    (["unplug", "0"], "unknown connector 0"),
    (["plug", "one"], "invalid int value"),
    (["plug", "1", "--soc", "120"], "not a percentage"),
    (["plug", "1", "--capacity-kwh", "-5"], "must be > 0"),
    (["swipe", "12"], "10 hex digits"),
    (["estop", "maybe"], "invalid choice: 'maybe'"),
    ([], "required: ACTION"),
]


def test_bad_usage_exits_2_with_a_message(station_files: StationFiles) -> None:
    """No simulator and no Redis needed: usage is checked first (cases run side by side)."""
    env = {**service_env(station_files), "REDIS_URL": "redis://127.0.0.1:1/0"}
    runs = [(args, subprocess.Popen([sys.executable, "manage.py", "sim", *args], cwd=REPO_ROOT, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            for args, _ in BAD_USAGE]
    outcomes = [(args, run.communicate(timeout=60)[1], run.returncode) for args, run in runs]
    for (args, stderr, code), (_, message) in zip(outcomes, BAD_USAGE, strict=True):
        assert code == 2, (args, stderr)
        assert message in stderr, (args, stderr)


def test_simulator_not_running_exits_1_with_a_hint(redis_client, station_files: StationFiles) -> None:
    done = manage_sim(service_env(station_files), "estop", "on")
    assert done.returncode == 1, done
    assert "Timeout" in done.stderr and "is the simulator running?" in done.stderr


def test_redis_down_exits_1(station_files: StationFiles) -> None:
    env = {**service_env(station_files), "REDIS_URL": "redis://127.0.0.1:1/0"}
    done = manage_sim(env, "unplug", "1")
    assert done.returncode == 1, done
    assert "cannot reach the bus" in done.stderr


def test_actions_reach_the_simulator(sim_station: SimStation) -> None:
    done = manage_sim(sim_station.env, "plug", "1", "--soc", "40", "--target-soc", "85",
                      "--capacity-kwh", "75", "--max-power-kw", "50")
    assert (done.returncode, done.stdout.strip()) == (0, "sim plug: done"), done
    with ModbusTcpClient("127.0.0.1", port=sim_station.files.modbus_port) as client:
        inputs = wait_until(lambda: _plugged(client), what="the EV on controller 21")
        assert inputs == [2, 40, 85, 500, 0]
        assert manage_sim(sim_station.env, "estop", "on").returncode == 0
        assert client.read_discrete_inputs(0, count=1, device_id=10).bits[0] is True

    refused = manage_sim(sim_station.env, "plug", "1")
    assert refused.returncode == 1
    assert "refused plug: already_plugged" in refused.stderr
    assert manage_sim(sim_station.env, "swipe", "0a00b1c2d3").returncode == 0
    assert manage_sim(sim_station.env, "unplug", "1").returncode == 0


def _plugged(client: ModbusTcpClient) -> list[int] | None:
    registers = client.read_input_registers(0, count=5, device_id=21).registers
    return registers if registers[0] == 2 else None
