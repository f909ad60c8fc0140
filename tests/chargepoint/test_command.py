"""`manage.py chargepoint`: configuration errors, exit codes, and real station services."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus import Bus, contract
from bus.enums import UpdateKind
from bus.messages import ExitForUpdateRequest
from tests.chargepoint.conftest import StartChargepoint
from tests.support.station import chargepoint_env, pid_alive
from tests.support.waiting import wait_until
from webapp.env import REPO_ROOT
from workers.chargepoint.exit_codes import ExitCode

REAL = ["diag", "counters"]  # services that run without the simulator


def _run(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", "chargepoint", *args], cwd=REPO_ROOT,
                          env=chargepoint_env(config), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_invalid_toml_exits_with_the_config_code_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "station.toml"
    bad.write_text("[station]\nmax_power_kw = = 3\n")
    done = _run(config=bad)
    assert done.returncode == ExitCode.CONFIG_ERROR
    assert "invalid TOML" in done.stderr and str(bad) in done.stderr


def test_missing_field_exits_with_the_config_code_naming_the_field(station_toml: Path) -> None:
    text = station_toml.read_text()
    assert "max_power_kw = 160.0\n" in text
    station_toml.write_text(text.replace("max_power_kw = 160.0\n", "", 1))
    done = _run(config=station_toml)
    assert done.returncode == ExitCode.CONFIG_ERROR
    assert "station.max_power_kw" in done.stderr and "Field required" in done.stderr


def test_missing_config_file_exits_with_the_config_code(tmp_path: Path) -> None:
    done = _run(config=tmp_path / "nowhere.toml")
    assert done.returncode == ExitCode.CONFIG_ERROR
    assert "nowhere.toml" in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--only", "diag,nonsense"], "nonsense"),
    (["--only", "sim"], "--sim"),
    (["--only", ","], "none given"),
])
def test_bad_service_selection_exits_with_the_config_code(station_toml: Path, args: list[str],
                                                          message: str) -> None:
    done = _run(*args, config=station_toml)
    assert done.returncode == ExitCode.CONFIG_ERROR
    assert message in done.stderr


def test_sigterm_stops_every_real_service_and_exits_0(start_chargepoint: StartChargepoint) -> None:
    chargepoint = start_chargepoint("manage.py", "chargepoint", "--only", ",".join(REAL))
    pids = chargepoint.wait_running(REAL)
    assert chargepoint.stop() == ExitCode.STOP
    assert not any(pid_alive(pid) for pid in pids.values())


def test_killed_real_service_runs_again_within_3_s(start_chargepoint: StartChargepoint) -> None:
    chargepoint = start_chargepoint("manage.py", "chargepoint", "--only", "diag")
    old = chargepoint.wait_running(["diag"])["diag"]
    os.kill(old, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(lambda: (pid := chargepoint.running_pid("diag")) and pid != old, timeout_s=3,
               what="diag running again (new pid, heartbeat)")
    assert time.monotonic() - killed_at < 3
    diag = chargepoint.children()["diag"]
    assert (diag.restarts, diag.last_exit_code) == (1, -signal.SIGKILL)


def test_stopped_real_service_is_replaced_within_3_s(start_chargepoint: StartChargepoint) -> None:
    chargepoint = start_chargepoint("manage.py", "chargepoint", "--only", "diag")
    old = chargepoint.wait_running(["diag"])["diag"]
    os.kill(old, signal.SIGSTOP)
    try:
        wait_until(lambda: chargepoint.pids().get("diag") not in (None, old), timeout_s=3,
                   what="the stopped diag replaced")
        wait_until(lambda: not pid_alive(old), timeout_s=1, what="the hung diag killed")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(old, signal.SIGKILL)
    chargepoint.wait_running(["diag"], timeout_s=10)


@pytest.mark.parametrize("kind", list(UpdateKind))
async def test_exit_for_update_stops_services_and_exits_with_the_kinds_code(
        start_chargepoint: StartChargepoint, bus: Bus, kind: UpdateKind) -> None:
    chargepoint = start_chargepoint("manage.py", "chargepoint", "--only", "diag")
    pid = chargepoint.wait_running(["diag"])["diag"]
    reply = await bus.request(contract.EXIT_FOR_UPDATE, ExitForUpdateRequest(kind=kind))
    assert reply.accepted
    assert chargepoint.wait_exit() == ExitCode.for_update(kind)
    assert not pid_alive(pid)


async def test_malformed_update_request_is_refused_and_changes_nothing(
        start_chargepoint: StartChargepoint, bus: Bus) -> None:
    chargepoint = start_chargepoint("-m", "tests.chargepoint.run_supervisor",
                                    "toy=tests.chargepoint.toy_service")
    chargepoint.wait_running(["toy"], timeout_s=20)
    from bus.envelope import Envelope

    envelope = Envelope(origin="test", data={"kind": "kernel"})
    await bus.redis.xadd(bus.names.command(contract.EXIT_FOR_UPDATE.name), {"m": envelope.model_dump_json()})
    popped = await bus.redis.blpop([bus.names.reply(envelope.id)], timeout=5)
    assert popped is not None and '"ValidationFailed"' in popped[1]
    chargepoint.assert_alive()
    assert chargepoint.running_pid("toy")


@pytest.mark.parametrize(("old", "new", "message"), [
    ('model = "sdm630"', 'model = "sdm999"',
     "connectors[1].meter.model: no register map for meter model 'sdm999'"),
    ('model = "mercury234"', 'model = "sdm630"', "station.meter.model: bus 'mercury' is a Mercury line"),
    ('controller = { bus = "rs485_controllers", device_id = 21 }',
     'controller = { bus = "rs485_controllers", device_id = 21, model = "phoenix_ev_cc" }',
     "connectors[0].controller: connector 1: controller model 'phoenix_ev_cc' cannot drive a CCS"),
])
def test_a_model_that_does_not_fit_its_wiring_exits_with_the_config_code(
        station_toml: Path, old: str, new: str, message: str) -> None:
    text = station_toml.read_text()
    assert old in text
    station_toml.write_text(text.replace(old, new, 1))
    done = _run(config=station_toml)
    assert done.returncode == ExitCode.CONFIG_ERROR, done.stderr
    assert f"{station_toml}: {message}" in done.stderr
