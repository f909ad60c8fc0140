"""Simulated power modules: ramp, limits, load, silence timeout, faults, and their CAN answers.

Time is driven with `advance(dt)`; frames go through `PowerModuleBank.receive` as the slcan
adapter hands them over (the full wire path is in tests/drivers/test_infypower_can.py).
"""

from __future__ import annotations

import pytest

from workers.common.station_config import PowerModulesConfig
from workers.drivers.infypower_frames import (
    Capabilities,
    Command,
    DeviceNo,
    ErrorCode,
    FrameId,
    Output,
    StatusFlag,
    decode_capabilities,
    decode_module_count,
    decode_output,
    decode_status,
    encode_on_off,
    encode_set_output,
    request_payload,
)
from workers.sim.faults import DeviceRegistry, UnknownFault
from workers.sim.power_modules import Load, PowerModuleBank, SimulatedPowerModule
from workers.sim.slcan_adapter import CanFrame


def running_module(voltage_v: float = 400.0, current_a: float = 50.0,
                   **kwargs: float) -> SimulatedPowerModule:
    module = SimulatedPowerModule("pm1", 1, **kwargs)  # 150..1000 V, 100 A, 30 kW; 300 V/s, 30 A/s
    module.set_output(round(voltage_v * 1000), round(current_a * 1000))
    module.switch(True)
    return module


def settle(module: SimulatedPowerModule, seconds: float, step_s: float = 0.05) -> None:
    for _ in range(round(seconds / step_s)):
        module.advance(step_s)
        module.heard()  # the controller keeps talking


def test_voltage_ramps_toward_the_setpoint_at_the_ramp_rate() -> None:
    module = running_module()
    settle(module, 0.5)
    assert module.voltage_v == pytest.approx(150.0)
    settle(module, 0.5)
    assert module.voltage_v == pytest.approx(300.0)
    settle(module, 1.0)
    assert module.voltage_v == 400.0
    assert module.current_a == 0.0  # open circuit
    assert module.status() == StatusFlag(0)


def test_switched_off_the_output_ramps_down_and_reports_dc_side_off() -> None:
    module = running_module()
    settle(module, 2.0)
    module.switch(False)
    settle(module, 0.5)
    assert module.voltage_v == pytest.approx(250.0)
    assert module.status() == StatusFlag.DC_SIDE_OFF


@pytest.mark.parametrize(("setpoint_v", "expected_v"), [(1200.0, 1000.0), (50.0, 150.0)])
def test_voltage_is_clamped_to_the_rated_range(setpoint_v: float, expected_v: float) -> None:
    module = running_module(setpoint_v)
    settle(module, 5.0)
    assert module.voltage_v == expected_v


def test_a_load_draws_what_it_demands_up_to_the_current_setpoint() -> None:
    module = running_module(current_a=50.0)
    module.apply_load(Load(battery_voltage_v=380.0, demand_a=40.0))
    settle(module, 0.5)
    assert module.voltage_v == 380.0  # the battery holds the terminals
    assert module.current_a == pytest.approx(15.0)  # 30 A/s
    settle(module, 2.0)
    assert module.current_a == 40.0
    module.apply_load(Load(380.0, demand_a=90.0))
    settle(module, 2.0)
    assert module.current_a == 50.0  # the setpoint limits
    assert not module.status() & StatusFlag.POWER_LIMIT


def test_power_limit_caps_current_and_sets_its_status_bit() -> None:
    module = running_module(current_a=100.0)
    module.apply_load(Load(battery_voltage_v=400.0, demand_a=200.0))
    settle(module, 5.0)
    assert module.current_a == pytest.approx(75.0)  # 30 kW / 400 V
    assert module.status() == StatusFlag.POWER_LIMIT


def test_no_current_flows_when_the_voltage_setpoint_is_below_the_battery() -> None:
    module = running_module(voltage_v=350.0)
    module.apply_load(Load(battery_voltage_v=400.0, demand_a=50.0))
    settle(module, 2.0)
    assert module.current_a == 0.0


def test_the_module_switches_itself_off_after_the_silence_timeout() -> None:
    module = running_module(silence_timeout_s=1.0)
    module.apply_load(Load(400.0, 20.0))
    settle(module, 1.0)
    assert module.current_a == pytest.approx(20.0)
    module.advance(0.9)
    assert module.commanded_on
    module.advance(0.2)  # 1.1 s without a frame
    assert not module.commanded_on
    assert module.status() == StatusFlag.DC_SIDE_OFF | StatusFlag.COMM_INTERRUPT
    assert module.current_a == pytest.approx(14.0)  # ramping down at 30 A/s
    module.advance(1.0)
    assert module.current_a == 0.0
    module.heard()
    assert module.status() == StatusFlag.DC_SIDE_OFF  # heard again, but stays off until told on


def test_a_shutdown_fault_cuts_the_output_at_once_and_clears() -> None:
    module = running_module()
    module.apply_load(Load(400.0, 30.0))
    settle(module, 2.0)
    module.inject_fault("overtemp")
    module.advance(0.01)
    assert module.current_a == 0.0
    assert module.status() == (StatusFlag.OVER_TEMPERATURE | StatusFlag.PROTECTION
                               | StatusFlag.DC_SIDE_OFF)
    module.clear_faults()
    settle(module, 1.0)
    assert module.current_a == 30.0
    assert module.status() == StatusFlag(0)


@pytest.mark.parametrize(("kind", "flag"), [("fault", StatusFlag.FAULT),
                                            ("input_uv", StatusFlag.INPUT_UNDER_VOLTAGE)])
def test_other_shutdown_faults_show_their_alarm_bit(kind: str, flag: StatusFlag) -> None:
    module = running_module()
    module.inject_fault(kind)
    assert module.status() == flag | StatusFlag.PROTECTION | StatusFlag.DC_SIDE_OFF


def test_a_fan_fault_halves_the_power_limit_but_keeps_running() -> None:
    module = running_module(current_a=100.0)
    module.apply_load(Load(400.0, 100.0))
    module.inject_fault("fan")
    settle(module, 5.0)
    assert module.current_a == pytest.approx(37.5)  # 15 kW / 400 V
    assert module.status() == StatusFlag.FAN_FAULT | StatusFlag.POWER_LIMIT


def test_an_unknown_fault_is_refused_with_the_known_kinds() -> None:
    module = SimulatedPowerModule("pm3", 3)
    with pytest.raises(UnknownFault, match="overtemp, fault, fan, input_uv"):
        module.inject_fault("smoke")


# --- the modules on the CAN bus ------------------------------------------------------------

def bank() -> PowerModuleBank:
    return PowerModuleBank([SimulatedPowerModule("pm1", 1), SimulatedPowerModule("pm2", 2)])


def ask(modules: PowerModuleBank, command: int, destination: int = 1,
        data: bytes = request_payload()) -> list[CanFrame]:
    return modules.receive(CanFrame(FrameId(command, destination, 0xF0).encode(), data))


def answer(frames: list[CanFrame]) -> tuple[FrameId, bytes]:
    assert len(frames) == 1
    return FrameId.decode(frames[0].arbitration_id), frames[0].data


def test_modules_answer_reads_to_the_controller_that_asked() -> None:
    modules = bank()
    ask(modules, Command.SET_OUTPUT, data=encode_set_output(400_000, 50_000))
    frame_id, data = answer(ask(modules, Command.ON_OFF, data=encode_on_off(True)))
    assert frame_id == FrameId(Command.ON_OFF, 0xF0, 1)
    assert data == encode_on_off(True)  # set commands are acknowledged with their payload
    modules.advance(2.0)
    frame_id, data = answer(ask(modules, Command.READ_OUTPUT))
    assert (frame_id.source, frame_id.destination, frame_id.error) == (1, 0xF0, ErrorCode.NORMAL)
    assert decode_output(data) == Output(400.0, 0.0)
    assert decode_status(answer(ask(modules, Command.STATUS, 2))[1]) == StatusFlag.DC_SIDE_OFF
    assert decode_capabilities(answer(ask(modules, Command.CAPABILITIES))[1]) == Capabilities(
        1000.0, 150.0, 100.0, 30_000.0)
    assert decode_module_count(answer(ask(modules, Command.MODULE_COUNT))[1]) == 2


def test_bad_requests_are_answered_with_an_error_code() -> None:
    modules = bank()
    frame_id, _ = answer(ask(modules, 0x3E))
    assert frame_id.error == ErrorCode.COMMAND_INVALID
    frame_id, _ = answer(ask(modules, Command.READ_OUTPUT, data=bytes(4)))
    assert frame_id.error == ErrorCode.DATA_INVALID
    frame_id, _ = answer(ask(modules, Command.ON_OFF, data=bytes.fromhex("0500000000000000")))
    assert frame_id.error == ErrorCode.DATA_INVALID
    assert not modules.module("pm1").commanded_on


def test_frames_not_for_a_module_get_no_answer() -> None:
    modules = bank()
    assert ask(modules, Command.STATUS, destination=7) == []  # no module there
    assert modules.receive(CanFrame(0x123, bytes(8), extended=False)) == []
    assert modules.receive(CanFrame(0x0083_01F0, bytes(8))) == []  # device number 2: not Infypower
    group = FrameId(Command.STATUS, 1, 0xF0, device=DeviceNo.GROUP).encode()
    assert modules.receive(CanFrame(group, bytes(8))) == []


def test_an_offline_module_neither_answers_nor_hears() -> None:
    modules = bank()
    pm1 = modules.module("pm1")
    pm1.set_online(False)
    modules.advance(3.0)
    assert ask(modules, Command.STATUS) == []
    assert pm1.silent_for_s == pytest.approx(3.0)
    pm1.set_online(True)
    assert answer(ask(modules, Command.STATUS))
    assert pm1.silent_for_s == 0.0


def test_the_bank_is_built_from_station_toml_and_registers_with_the_sim_command() -> None:
    config = PowerModulesConfig(channel="/dev/null", addresses=(4, 5, 6), rated_kw=40.0,
                                silence_timeout_s=3.0, resend_s=1.0)
    modules = PowerModuleBank.from_config(config)
    assert [(m.name, m.address) for m in modules.modules] == [("pm1", 4), ("pm2", 5), ("pm3", 6)]
    assert modules.module("pm3").rating.rated_power_w == 40_000.0
    assert modules.module("pm1").silence_timeout_s == 3.0
    registry = DeviceRegistry()
    for module in modules.modules:
        registry.add(module)
    assert registry.describe()[0] == ("pm1", True, ("overtemp", "fault", "fan", "input_uv"))
