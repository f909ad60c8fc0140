"""A simulated controller on a real pymodbus server, driven by each driver through a ModbusHub:
the session's phases reach the station over the station protocol and over the Phoenix map,
and the device refuses bad writes, busy commands and goes silent offline as hardware does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from pymodbus.server import ModbusTcpServer

from bus.enums import Standard
from workers.common.redis_server import free_port
from workers.common.station_config import ConnectorConfig, ModbusTcpBus
from workers.drivers.controllers import build_controller
from workers.drivers.controllers.interface import ChargeController, ControllerError, EvState, SessionPhase
from workers.drivers.controllers.phoenix_ev_cc import PhoenixEvCcController
from workers.drivers.controllers.station_dc import BOOTLOADER_LEAVE, HoldingRegister, StationDcController
from workers.drivers.errors import DeviceError
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import FunctionCode
from workers.sim.devices import controller_device
from workers.sim.ev import Battery, SimulatedEv
from workers.sim.ev_controller import SimulatedController
from workers.sim.ev_controller_wire import port_of

DEVICE_ID = 21
SCALE = 0.01  # the session's clock runs 100x faster than nominal
STEP_S = 0.001  # 0.1 nominal seconds per physics step


def connector(standard: str, model: str = "station_dc", **phoenix: object) -> ConnectorConfig:
    controller: dict[str, object] = {"bus": "b", "device_id": DEVICE_ID, "model": model}
    if phoenix:
        controller["phoenix"] = phoenix
    return ConnectorConfig.model_validate({
        "id": 1, "standard": standard, "max_power_kw": 150.0, "contactor_coil": 0,
        "meter": {"bus": "b", "device_id": 1, "model": "sdm630"}, "controller": controller})


@dataclass
class Rig:
    controller: SimulatedController
    driver: ChargeController
    hub: ModbusHub

    def run(self, nominal_s: float, *, live: bool = True) -> None:
        for _ in range(round(nominal_s / (STEP_S / SCALE))):
            self.controller.step(live=live, dt_s=STEP_S)

    async def poll_until(self, phase: SessionPhase, *, limit_s: float = 60.0):
        waited = 0.0
        while (snapshot := await self.driver.poll()).phase is not phase:
            assert waited < limit_s, f"{phase} not reached; last {snapshot}"
            self.run(0.5)
            waited += 0.5
        return snapshot


@asynccontextmanager
async def served(controller: SimulatedController) -> AsyncIterator[ModbusHub]:
    """`controller` answering as device DEVICE_ID on a Modbus TCP server, and a hub to it."""
    device = controller_device(DEVICE_ID)
    port = port_of(device)
    assert port is not None
    port.attach(controller)
    address = ("127.0.0.1", free_port())
    server = ModbusTcpServer([device], address=address)
    await server.serve_forever(background=True)
    hub = ModbusHub("b", ModbusTcpBus(kind="modbus_tcp", host=address[0], port=address[1], timeout_s=0.5))
    try:
        yield hub
    finally:
        await hub.close()
        await server.shutdown()


@pytest.fixture
async def rig(request) -> AsyncIterator[Rig]:
    config: ConnectorConfig = request.param
    controller = SimulatedController(config, time_scale=SCALE)
    async with served(controller) as hub:
        yield Rig(controller, build_controller(hub, config), hub)


def ev(soc: float = 20.0, max_kw: float = 100.0) -> SimulatedEv:
    return SimulatedEv(Battery(60.0, soc), target_soc=80.0, max_power_w=max_kw * 1000.0)


@pytest.mark.parametrize("rig", [connector("CCS")], indirect=True)
async def test_station_protocol_carries_a_ccs_session(rig: Rig) -> None:
    idle = await rig.driver.poll()
    assert (idle.ev_state, idle.phase, idle.firmware_version) == (EvState.A, SessionPhase.IDLE, "1.0.0")
    rig.controller.plug(ev())
    rig.run(1.0)
    handshake = await rig.driver.poll()
    assert (handshake.ev_state, handshake.phase, handshake.standard) == (EvState.C, SessionPhase.HANDSHAKE,
                                                                           Standard.CCS)
    await rig.driver.set_output(True, 50_000.0)
    charging = await rig.poll_until(SessionPhase.CHARGING)
    rig.run(5.0)
    charging = await rig.driver.poll()
    assert charging.soc == 20.0 and charging.demand.max_voltage_v == 410.0
    assert charging.present.voltage_v * charging.present.current_a == pytest.approx(50_000.0, rel=0.01)
    assert charging.ev_max_power_w > 50_000.0
    await rig.driver.set_output(False, 0.0)
    finished = await rig.poll_until(SessionPhase.FINISHED)
    assert (finished.ev_state, finished.present.current_a) == (EvState.B, 0.0)


@pytest.mark.parametrize("rig", [connector("Type2")], indirect=True)
async def test_station_protocol_carries_a_type2_session_and_its_pause(rig: Rig) -> None:
    rig.controller.plug(ev(max_kw=11.0))
    plugged = await rig.driver.poll()
    assert (plugged.ev_state, plugged.phase, plugged.demand.max_current_a) == (
        EvState.C, SessionPhase.PLUGGED, 32.0)
    await rig.driver.set_output(True, 22_080.0)
    await rig.poll_until(SessionPhase.CHARGING)
    rig.run(3.0)
    assert (await rig.driver.poll()).present.current_a == pytest.approx(11_000 / 690, abs=0.1)
    rig.controller.set_paused(True)
    rig.run(1.0)
    paused = await rig.driver.poll()
    assert (paused.ev_state, paused.phase) == (EvState.B, SessionPhase.PAUSED_BY_EV)


@pytest.mark.parametrize("rig", [connector("Type2", "phoenix_ev_cc", state_byte="high"),
                                 connector("Type2", "phoenix_ev_cc", state_byte="low", phases=3)],
                         indirect=True)
async def test_phoenix_map_carries_a_type2_session(rig: Rig) -> None:
    assert isinstance(rig.driver, PhoenixEvCcController)
    assert (await rig.driver.poll()).firmware_version == "V1.0.0"
    rig.controller.plug(ev(max_kw=22.0))
    assert (await rig.driver.poll()).phase is SessionPhase.PLUGGED
    await rig.driver.set_output(True, 11_040.0)  # 16 A per phase at 230 V
    assert rig.controller.command.limits.current_a == 16.0 and rig.controller.command.enabled
    await rig.poll_until(SessionPhase.CHARGING)
    await rig.driver.set_output(True, 3_000.0)  # below 6 A: the PWM goes off
    assert not rig.controller.command.enabled
    await rig.driver.set_output(True, 11_040.0)
    rig.controller.inject_fault("diode_fail")
    rig.run(0.5)
    faulted = await rig.driver.poll()
    assert (faulted.ev_state, faulted.phase, faulted.errors) == (EvState.F, SessionPhase.FAULT,
                                                                 ControllerError.DIODE)


@pytest.mark.parametrize("rig", [connector("Type2", "phoenix_ev_cc")], indirect=True)
async def test_phoenix_refuses_a_current_out_of_range(rig: Rig) -> None:
    with pytest.raises(DeviceError, match="exception 3"):
        await rig.hub.write_registers(DEVICE_ID, 22000, [70])
    with pytest.raises(DeviceError, match="exception 2"):
        await rig.hub.read_registers(DEVICE_ID, FunctionCode.READ_INPUT_REGISTERS, 24010, 1)


@pytest.mark.parametrize("rig", [connector("CCS")], indirect=True)
async def test_bootloader_entry_is_refused_while_energised(rig: Rig) -> None:
    assert isinstance(rig.driver, StationDcController)
    rig.controller.plug(ev())
    await rig.driver.set_output(True, 50_000.0)
    with pytest.raises(DeviceError, match="exception 6"):
        await rig.driver.enter_bootloader()
    await rig.poll_until(SessionPhase.CHARGING)
    await rig.driver.set_output(False, 0.0)
    rig.run(0.2)
    with pytest.raises(DeviceError, match="exception 6"):  # still ramping down, contactors closed
        await rig.driver.enter_bootloader()
    await rig.poll_until(SessionPhase.FINISHED)
    await rig.driver.enter_bootloader()
    assert rig.controller.in_bootloader
    with pytest.raises(DeviceError, match="exception 6"):
        await rig.driver.poll()  # the application's registers are busy in the bootloader
    with pytest.raises(DeviceError, match="exception 6"):
        await rig.driver.set_output(True, 1_000.0)
    with pytest.raises(DeviceError, match="exception 6"):
        await rig.driver.read_output()
    assert await rig.driver.read_firmware_version() == "1.0.0"  # the identity block still answers
    await rig.hub.write_registers(DEVICE_ID, HoldingRegister.BOOTLOADER, [BOOTLOADER_LEAVE])
    assert (await rig.driver.poll()).firmware_version == "1.0.0"


@pytest.mark.parametrize("rig", [connector("CHAdeMO")], indirect=True)
async def test_writes_outside_the_protocol_are_refused(rig: Rig) -> None:
    with pytest.raises(DeviceError, match="exception 3"):
        await rig.hub.write_registers(DEVICE_ID, HoldingRegister.ENABLE, [2])
    with pytest.raises(DeviceError, match="exception 2"):
        await rig.hub.write_registers(DEVICE_ID, 5, [1])
    with pytest.raises(DeviceError, match="exception 3"):
        await rig.hub.write_registers(DEVICE_ID, HoldingRegister.BOOTLOADER, [0x1234])
    with pytest.raises(DeviceError, match="exception 1"):
        await rig.hub.read_bits(DEVICE_ID, FunctionCode.READ_COILS, 0, 1)
    assert not rig.controller.command.enabled


@pytest.mark.parametrize("rig", [connector("GBT")], indirect=True)
async def test_an_offline_controller_is_a_device_error_until_it_answers_again(rig: Rig) -> None:
    rig.controller.set_online(False)
    with pytest.raises(DeviceError, match="exception 11"):
        await rig.driver.poll()
    rig.controller.set_online(True)
    assert (await rig.driver.poll()).phase is SessionPhase.IDLE


@pytest.mark.parametrize("rig", [connector("CCS")], indirect=True)
async def test_a_controller_fault_reaches_the_station_without_an_ev(rig: Rig) -> None:
    rig.controller.inject_fault("internal")
    faulted = await rig.driver.poll()
    assert (faulted.ev_state, faulted.errors) == (EvState.F, ControllerError.INTERNAL)
    rig.controller.clear_faults()
    assert (await rig.driver.poll()).ev_state is EvState.A
