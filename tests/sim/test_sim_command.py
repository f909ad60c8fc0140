"""`python manage.py sim ...`: exit codes and messages, with and without a running simulator."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pymodbus.exceptions import ModbusIOException

from tests.sim.processes import REPO_ROOT, SimStation, StationFiles, service_env
from tests.support.hardware import ToolWire, load_config, sync_tool_wire
from tests.support.waiting import wait_until


def manage_sim(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", "sim", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


BAD_USAGE = [
    (["fly", "1"], "invalid choice: 'fly'"),
    (["plug", "7"], "unknown connector 7 (station.toml has [1, 2, 3, 4])"),
    (["unplug", "0"], "unknown connector 0"),
    (["plug", "one"], "invalid int value"),
    (["plug", "1", "--soc", "120"], "not a percentage"),
    (["plug", "1", "--capacity-kwh", "-5"], "must be > 0"),
    (["swipe", "12"], "10 hex digits (EM4100) or 8, 14 or 20"),
    (["fault", "meter1"], "the following arguments are required: kind"),
    (["offline"], "the following arguments are required: device"),
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
    with sync_tool_wire(load_config(sim_station.files.config)) as client:
        inputs = wait_until(lambda: _plugged(client), what="the EV on controller 21")
        assert inputs == [2, 0xFFFF, 0xFFFF, 0, 0]  # CCS: SoC and limits come with the parameter exchange
        client.write_registers(0, [1, 500], device_id=21)  # authorise it (enable, 50 kW)
        inputs = wait_until(lambda: _plugged(client, soc_known=True), what="the EV's parameters")
        assert inputs[1:3] == [40, 85] and 400 < inputs[3] <= 500  # 50 kW at most, less at its voltage
        assert manage_sim(sim_station.env, "estop", "on").returncode == 0
        assert client.read_discrete_inputs(0, count=1, device_id=10).bits[0] is True

    refused = manage_sim(sim_station.env, "plug", "1")
    assert refused.returncode == 1
    assert "refused plug: already_plugged" in refused.stderr
    assert manage_sim(sim_station.env, "swipe", "0a00b1c2d3").returncode == 0
    assert manage_sim(sim_station.env, "unplug", "1").returncode == 0


def _plugged(client: ToolWire, *, soc_known: bool = False) -> list[int] | None:
    registers = client.read_input_registers(0, count=5, device_id=21).registers
    return registers if registers[0] == 2 and (registers[1] != 0xFFFF or not soc_known) else None


def test_devices_are_listed_faulted_and_taken_offline(sim_station: SimStation) -> None:
    listing = manage_sim(sim_station.env, "list")
    assert listing.returncode == 0, listing
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    expected = {"meter1", "meter2", "meter_station", "controller1", "controller2", "io", "imd", "rfid",
                *(f"pm{n}" for n in range(1, 7))}
    assert expected <= set(rows), listing.stdout
    assert "crc" in rows["meter1"] and "weld1" in rows["io"] and "overtemp" in rows["pm1"]
    assert "insulation" in rows["controller1"]

    with sync_tool_wire(load_config(sim_station.files.config)) as client:
        def voltage() -> object:  # meter1 is an AcuDC 243: holding registers from 0x0200
            return client.read_holding_registers(0x0200, count=2, device_id=1)

        assert not voltage().isError()
        assert manage_sim(sim_station.env, "offline", "meter1").returncode == 0
        assert "offline" in manage_sim(sim_station.env, "list").stdout.split("meter1", 1)[1].splitlines()[0]
        with pytest.raises(ModbusIOException, match="No response"):  # silent, as unplugged on RS485
            voltage()
        assert manage_sim(sim_station.env, "online", "meter1").returncode == 0
        assert not voltage().isError()

    assert manage_sim(sim_station.env, "fault", "io", "weld1").returncode == 0
    assert manage_sim(sim_station.env, "clear", "io").returncode == 0
    unknown = manage_sim(sim_station.env, "fault", "io", "melted")
    assert unknown.returncode == 2 and "refused fault: unknown_fault" in unknown.stderr
    missing = manage_sim(sim_station.env, "offline", "toaster")
    assert missing.returncode == 2 and "refused offline: unknown_device" in missing.stderr
