"""Phoenix Contact EV-CC-AC1-M3: its words (state byte high or low, error bits, firmware) and
the driver against a real pymodbus server holding literal register values."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymodbus.simulator import DataType, SimData, SimDevice

from bus.enums import Standard
from tests.drivers.modbus_server import DriverTestServer
from workers.drivers.controllers.iec61851 import PilotState
from workers.drivers.controllers.interface import (
    ControllerError,
    EvState,
    OutputLimits,
    SessionPhase,
    UnsupportedCommand,
)
from workers.drivers.controllers.phoenix_ev_cc import (
    PhoenixEvCcController,
    amps_for,
    decode_cable_current,
    decode_errors,
    decode_firmware,
    decode_state,
    encode_errors,
    encode_state,
)
from workers.drivers.errors import DeviceError
from workers.drivers.modbus_hub import ModbusHub

PHOENIX = 3


@pytest.mark.parametrize(("word", "byte", "pilot"), [
    (0x4232, "high", PilotState("B", True)),  # "B2" as the serial variant sends it
    (0x4131, "high", PilotState("A", False)),
    (0x4330, "high", PilotState("C", None)),
    (0x4600, "high", PilotState("F", None)),
    (0x3243, "low", PilotState("C", True)),  # letter in the low byte (Ethernet map)
    (0x0045, "low", PilotState("E", None)),
])
def test_state_letter_is_read_from_the_configured_byte(word, byte, pilot) -> None:
    assert decode_state(word, byte) == pilot


@pytest.mark.parametrize(("word", "byte"), [(0x4232, "low"), (0x3242, "high"), (0x4732, "high"), (0, "high")])
def test_a_state_word_without_a_letter_in_that_byte_is_refused(word, byte) -> None:
    with pytest.raises(ValueError, match="no IEC 61851 letter"):
        decode_state(word, byte)


@pytest.mark.parametrize("byte", ["high", "low"])
@pytest.mark.parametrize("pilot", [PilotState("B", False), PilotState("C", True), PilotState("F", None)])
def test_state_encoding_is_what_the_driver_decodes(pilot, byte) -> None:
    assert decode_state(encode_state(pilot, byte), byte) == pilot


@pytest.mark.parametrize(("word", "flags"), [
    (0, ControllerError(0)),
    (1 << 13, ControllerError.DIODE),
    (1 << 3 | 1 << 4, ControllerError.PROXIMITY | ControllerError.CONTROL_PILOT),
    (1 << 12 | 1 << 15, ControllerError.CONTACTOR | ControllerError.RESIDUAL_CURRENT),
    (1 << 5, ControllerError.UNAVAILABLE),
    (1 << 6 | 1 << 7 | 1 << 8, ControllerError.LOCK),
    (1 << 11, ControllerError.EV_FAULT),
    (1 << 0 | 1 << 1, ControllerError(0)),  # bits the manual leaves undefined
])
def test_error_bits_become_typed_flags(word, flags) -> None:
    assert decode_errors(word) == flags


def test_flags_encode_on_their_first_phoenix_bit() -> None:
    assert encode_errors(ControllerError.DIODE | ControllerError.PROXIMITY) == 1 << 13 | 1 << 2
    assert encode_errors(ControllerError.INSULATION) == 0  # Phoenix has no bit for it


def test_firmware_and_cable_words() -> None:
    assert decode_firmware([0x5601, 2, 5]) == "V1.2.5"
    assert decode_firmware([0x0003, 0, 9]) == "3.0.9"
    assert decode_cable_current(32) == 32.0
    assert decode_cable_current(0) is None and decode_cable_current(0xFFFF) is None
    with pytest.raises(ValueError):
        decode_cable_current(70)


@pytest.mark.parametrize(("limits", "phases", "amps"), [
    (OutputLimits(power_w=22_080.0), 3, 32),
    (OutputLimits(power_w=11_039.0), 3, 15),  # rounded down: never more than allocated
    (OutputLimits(power_w=7_360.0), 1, 32),
    (OutputLimits(power_w=4_000.0), 3, 5),  # below 6 A: the driver switches the PWM off
    (OutputLimits(power_w=50_000.0, current_a=16.0), 3, 16),
    (OutputLimits(), 3, 63),
    (OutputLimits(voltage_v=10.0), 3, 63),  # voltage limits do not apply to AC
])
def test_power_limits_become_whole_amps(limits, phases, amps) -> None:
    assert amps_for(limits, phases=phases, voltage_v=230.0) == amps


def phoenix_device(state: int = 0x4131, cable_a: int = 0, errors: int = 0) -> SimDevice:
    """The registers the driver uses, as literal words (state word in the high-byte layout)."""
    status = [state, cable_a, 0, 0] + [0] * 21 + [errors]  # 24000..24025
    return SimDevice(PHOENIX, (
        [SimData(0, values=[False] * 0x10000, datatype=DataType.BITS)],
        [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
        [SimData(22000, values=[16], datatype=DataType.REGISTERS)],
        [SimData(1031, values=[0x5601, 2, 5], datatype=DataType.REGISTERS),
         SimData(24000, values=status, datatype=DataType.REGISTERS)],
    ))


@pytest.fixture
async def phoenix() -> AsyncIterator[tuple[DriverTestServer, ModbusHub]]:
    server = DriverTestServer(lambda: [phoenix_device()])
    await server.start()
    hub = ModbusHub("rs485", server.bus)
    try:
        yield server, hub
    finally:
        await hub.close()
        await server.stop()


async def _set_status(server: DriverTestServer, state: int, cable_a: int = 32, errors: int = 0) -> None:
    assert server.server is not None
    await server.server.async_setValues(PHOENIX, 4, 24000, [state, cable_a])
    await server.server.async_setValues(PHOENIX, 4, 24025, [errors])


async def test_driver_reads_state_cable_errors_and_firmware(phoenix) -> None:
    server, hub = phoenix
    driver = PhoenixEvCcController(hub, PHOENIX, phases=3, voltage_v=230.0)
    idle = await driver.poll()
    assert (idle.ev_state, idle.phase, idle.standard, idle.firmware_version) == (
        EvState.A, SessionPhase.IDLE, None, "V1.2.5")

    await _set_status(server, 0x4231)  # B1: plugged, presumed to ask for the cable's 32 A
    plugged = await driver.poll()
    assert (plugged.ev_state, plugged.phase) == (EvState.C, SessionPhase.PLUGGED)
    assert plugged.standard is Standard.TYPE2
    assert plugged.ev_max_power_w == 32 * 3 * 230.0
    assert plugged.demand.max_current_a == 32.0 and plugged.soc is None

    await _set_status(server, 0x4332)
    assert (await driver.poll()).phase is SessionPhase.CHARGING
    await _set_status(server, 0x4232)  # back to B2 after charging: the EV is full or paused
    paused = await driver.poll()
    assert (paused.ev_state, paused.phase) == (EvState.B, SessionPhase.PAUSED_BY_EV)
    assert paused.ev_max_power_w == 0.0

    await _set_status(server, 0x4232, errors=1 << 13)
    faulted = await driver.poll()
    assert (faulted.ev_state, faulted.phase, faulted.errors, faulted.error_code) == (
        EvState.F, SessionPhase.FAULT, ControllerError.DIODE, 1 << 13)


async def test_power_becomes_current_and_enable_coil(phoenix) -> None:
    server, hub = phoenix
    assert server.server is not None
    driver = PhoenixEvCcController(hub, PHOENIX, phases=3, voltage_v=230.0)
    await driver.set_output(True, 11_050.0)
    assert await server.server.async_getValues(PHOENIX, 3, 22000, 1) == [16]
    assert await server.server.async_getValues(PHOENIX, 1, 20000, 1) == [True]
    await driver.set_limits(OutputLimits(power_w=22_080.0, current_a=20.0))
    assert await server.server.async_getValues(PHOENIX, 3, 22000, 1) == [20]
    await driver.set_output(True, 1_000.0)  # 1.4 A: no PWM may be offered
    assert await server.server.async_getValues(PHOENIX, 1, 20000, 1) == [False]
    await driver.set_output(True, 22_080.0)
    await driver.set_enabled(False)
    assert await server.server.async_getValues(PHOENIX, 1, 20000, 1) == [False]
    with pytest.raises(ValueError):
        await driver.set_output(True, -5.0)


async def test_low_byte_option_reads_the_other_layout(phoenix) -> None:
    server, hub = phoenix
    await _set_status(server, 0x3243)  # 'C' in the low byte, '2' in the high byte
    assert (await PhoenixEvCcController(hub, PHOENIX, state_byte="low").poll()).phase is SessionPhase.CHARGING
    with pytest.raises(DeviceError, match=r"bad controller data: .*high byte"):
        await PhoenixEvCcController(hub, PHOENIX, state_byte="high").poll()


async def test_no_bootloader_over_modbus(phoenix) -> None:
    _, hub = phoenix
    with pytest.raises(UnsupportedCommand):
        await PhoenixEvCcController(hub, PHOENIX).enter_bootloader()


async def test_no_phoenix_at_the_address_is_a_device_error(phoenix) -> None:
    """An id with no such device answers with a Modbus exception: never a snapshot."""
    _, hub = phoenix
    with pytest.raises(DeviceError, match="exception"):
        await PhoenixEvCcController(hub, 99).poll()
