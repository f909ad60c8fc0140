"""The simulated controller as `manage.py sim` sees it: plug with a standard, EV-side pause and
resume (the bus command and the CLI's usage), and the `controller<N>` device's faults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bus.messages import SimAction
from tests.sim.processes import REPO_ROOT, StationFiles, service_env, write_station_toml
from workers.common.station_config import ConnectorConfig, load_station_config
from workers.drivers.controllers.interface import ControllerError, EvState, SessionPhase
from workers.sim.commands import SimCommands
from workers.sim.ev import Battery, SimulatedEv
from workers.sim.ev_controller import PlugError, SimulatedController
from workers.sim.faults import DeviceRegistry, FaultState, UnknownFault
from workers.sim.rfid_port import SimulatedReader
from workers.sim.station import SimStation


@pytest.fixture
def commands(tmp_path: Path) -> SimCommands:
    """The bus command's handler on a station built from ops/station.sim.toml (CCS on 1,
    Type 2 on 2); plugging and pausing touch no wire, so nothing needs to listen."""
    files = write_station_toml(tmp_path)
    config = load_station_config(files.config, data_dir=tmp_path)
    return SimCommands(SimStation(config, tmp_path / "meters.json"), SimulatedReader(tmp_path / "tty"))


async def _do(commands: SimCommands, action: str, connector_id: int | None = 1, **fields) -> str:
    result = await commands.handle(SimAction(action=action, connector_id=connector_id, **fields))
    return "done" if result.accepted else str(result.reason)


async def test_plug_takes_the_connectors_standard_and_refuses_another(commands: SimCommands) -> None:
    assert await _do(commands, "plug", standard="chademo") == "standard_not_supported"
    assert await _do(commands, "plug", 2, standard="ccs") == "standard_not_supported"
    assert await _do(commands, "plug", 2, standard="type2", max_power_kw=7.4) == "done"
    assert await _do(commands, "plug", soc=30, target_soc=90, capacity_kwh=40) == "done"
    assert await _do(commands, "plug") == "already_plugged"
    connectors = commands.station.connectors
    assert connectors[1].controller.session.standard.value == "CCS"
    assert (connectors[1].ev.soc, connectors[1].ev.target_soc, connectors[1].ev.battery.capacity_kwh) == (
        30, 90, 40)
    assert connectors[2].ev.max_power_w == 7_400.0


async def test_pause_and_resume_the_ev(commands: SimCommands) -> None:
    assert await _do(commands, "pause") == "not_plugged"
    await _do(commands, "plug")
    assert await _do(commands, "resume") == "not_paused"
    assert await _do(commands, "pause") == "done"
    assert commands.station.connectors[1].ev.paused
    assert await _do(commands, "pause") == "already_paused"
    assert await _do(commands, "resume") == "done"
    assert await _do(commands, "pause", 9) == "unknown_connector"
    assert await _do(commands, "resume", None) == "missing_connector_id"
    assert await _do(commands, "unplug") == "done"
    assert await _do(commands, "unplug") == "not_plugged"


def test_new_cli_usage_errors_exit_2(station_files: StationFiles) -> None:
    env = {**service_env(station_files), "REDIS_URL": "redis://127.0.0.1:1/0"}
    cases = [(["plug", "1", "--standard", "tesla"], "invalid choice: 'tesla'"),
             (["pause"], "the following arguments are required: connector"),
             (["resume", "7"], "unknown connector 7"),
             (["plug", "1", "--max-kw", "0"], "must be > 0")]
    runs = [subprocess.Popen([sys.executable, "manage.py", "sim", *args], cwd=REPO_ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args, _ in cases]
    for run, (args, message) in zip(runs, cases, strict=True):
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 2 and message in stderr, (args, stderr)


def _controller(standard: str = "CCS") -> SimulatedController:
    return SimulatedController(ConnectorConfig.model_validate({
        "id": 3, "standard": standard, "max_power_kw": 50.0, "contactor_coil": 0,
        "meter": {"bus": "b", "device_id": 1, "model": "sdm630"},
        "controller": {"bus": "b", "device_id": 23}}), time_scale=0.01)


def _ev() -> SimulatedEv:
    return SimulatedEv(Battery(60.0, 20.0), target_soc=80.0, max_power_w=50_000.0)


@pytest.mark.parametrize(("standard", "kinds"), [
    ("Type2", ("diode_fail", "overtemp", "comm_loss", "internal", "flash_crc", "flash_fail")),
    ("CCS", ("insulation", "overtemp", "comm_loss", "welding", "internal", "flash_crc", "flash_fail")),
])
def test_a_controller_is_a_simulated_device_with_its_standards_faults(standard, kinds) -> None:
    controller = _controller(standard)
    registry = DeviceRegistry()
    registry.add(controller)
    assert registry.describe() == [("controller3", True, kinds)]
    with pytest.raises(UnknownFault, match="no fault 'crc'"):
        controller.inject_fault("crc")


def test_the_wire_switch_owns_offline_and_wire_faults() -> None:
    controller, switch = _controller(), FaultState("controller3", ("crc", "garbage"))
    controller.use_wire_switch(switch)
    assert controller.fault_kinds[-2:] == ("crc", "garbage")
    controller.inject_fault("crc")
    controller.inject_fault("overtemp")
    controller.set_online(False)
    assert (switch.faults, switch.online, controller.online) == ({"crc"}, False, False)
    assert controller.answers_itself  # the switch silences it on the wire
    controller.clear_faults()
    assert not switch.faults and controller.snapshot().errors == ControllerError(0)


def test_clearing_a_fault_restarts_the_session_from_plug_in() -> None:
    controller = _controller()
    controller.plug(_ev())
    controller.command.enabled = True
    controller.inject_fault("overtemp")
    controller.step(live=True, dt_s=0.001)
    assert controller.snapshot().phase is SessionPhase.FAULT
    controller.clear_faults()
    snapshot = controller.snapshot()
    assert (snapshot.phase, snapshot.ev_state) == (SessionPhase.HANDSHAKE, EvState.C)


def test_plug_refusals_are_reason_keys() -> None:
    controller = _controller()
    with pytest.raises(PlugError, match="not_plugged"):
        controller.unplug()
    controller.plug(_ev())
    with pytest.raises(PlugError, match="already_plugged"):
        controller.plug(_ev())
