"""The power modules' lease in simulation: ops/station.sim.toml's modules switch off after 2 s
without a frame from the station (its silence timeout) and stay on while setpoints come every
0.5 s (its resend period); the configuration refuses a resend period too close to the lease."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.sim.processes import write_station_toml
from workers.common.station_config import PowerModulesConfig, load_station_config
from workers.drivers.infypower_frames import Command, FrameId, StatusFlag, encode_on_off, encode_set_output
from workers.sim.power_modules import Load, PowerModuleBank
from workers.sim.slcan_adapter import CanFrame

STEP_S = 0.05


@pytest.fixture
def modules(tmp_path: Path) -> PowerModuleBank:
    config = load_station_config(write_station_toml(tmp_path).config, data_dir=tmp_path).power_modules
    assert config is not None
    assert (config.silence_timeout_s, config.resend_s) == (2.0, 0.5)
    return PowerModuleBank.from_config(config)


def send(modules: PowerModuleBank, command: Command, data: bytes) -> None:
    """A frame from the station's driver to pm1 (address 0), as the slcan adapter hands it over."""
    modules.receive(CanFrame(FrameId(command, destination=0, source=0xF0).encode(), data))


def refresh(modules: PowerModuleBank) -> None:
    send(modules, Command.SET_OUTPUT, encode_set_output(400_000, 50_000))
    send(modules, Command.ON_OFF, encode_on_off(True))


def run(modules: PowerModuleBank, seconds: float, *, resend_s: float | None = None) -> None:
    since_resend = 0.0
    for _ in range(round(seconds / STEP_S)):
        modules.advance(STEP_S)
        since_resend += STEP_S
        if resend_s is not None and since_resend >= resend_s - 1e-9:
            refresh(modules)
            since_resend = 0.0


def test_modules_deliver_while_the_station_resends_every_half_second(modules: PowerModuleBank) -> None:
    pm1 = modules.module("pm1")
    pm1.apply_load(Load(battery_voltage_v=380.0, demand_a=40.0))
    refresh(modules)
    run(modules, 10.0, resend_s=0.5)
    assert pm1.commanded_on and pm1.current_a == pytest.approx(40.0)
    assert not pm1.status() & StatusFlag.COMM_INTERRUPT


def test_modules_switch_off_after_two_seconds_of_silence(modules: PowerModuleBank) -> None:
    pm1 = modules.module("pm1")
    pm1.apply_load(Load(battery_voltage_v=380.0, demand_a=40.0))
    refresh(modules)
    run(modules, 3.0, resend_s=0.5)
    run(modules, 1.9)  # the station fell silent
    assert pm1.commanded_on
    run(modules, 0.15)
    assert not pm1.commanded_on
    assert pm1.status() & (StatusFlag.DC_SIDE_OFF | StatusFlag.COMM_INTERRUPT) == (
        StatusFlag.DC_SIDE_OFF | StatusFlag.COMM_INTERRUPT)
    run(modules, 2.0)  # 30 A/s ramp
    assert pm1.current_a == 0.0


@pytest.mark.parametrize(("silence_s", "resend_s", "ok"), [(2.0, 0.5, True), (2.0, 0.6, True),
                                                           (2.0, 0.7, False), (1.0, 0.5, False)])
def test_the_resend_period_must_stay_well_under_the_silence_timeout(silence_s, resend_s, ok) -> None:
    fields = {"channel": "/dev/null", "count": 2, "silence_timeout_s": silence_s, "resend_s": resend_s}
    if ok:
        assert PowerModulesConfig(**fields).silence_timeout_s == silence_s
    else:
        with pytest.raises(ValidationError, match="well under silence_timeout_s"):
            PowerModulesConfig(**fields)
