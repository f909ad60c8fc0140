"""The IO module driver against a real pymodbus server: both layouts (ICP DAS-style bits,
Owen bitmask registers), input polarity, the number of requests per poll, whole-image output
writes, contactor feedback faults with a driven clock, and the power modules' link contactors
(keyed "pm1>1") handled exactly like connector contactors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from workers.common.io_config import IoPoint, Polarity
from workers.common.power_config import link_key
from workers.common.redis_server import free_port
from workers.common.station_config import IoModuleConfig, ModbusTcpBus, StationConfig
from workers.drivers.errors import DeviceError
from workers.drivers.io_layout import ReadRequest, WireBit, plan_reads
from workers.drivers.io_module import (
    SAFE_VALUE_COIL_BASE,
    WATCHDOG_TIMEOUT_REGISTER,
    ContactorFault,
    ContactorWiring,
    IoModule,
)
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import FunctionCode
from workers.sim.devices import absent_devices

BITS = 10  # ICP DAS-style: DO at 0.., DI at 32.. in the coil and the discrete-input table
FLAKY = 11  # like BITS, but refuses the first coil write
WATCHED = 12  # like BITS, with the ICP DAS host watchdog's coils and timeout register
MU110 = 16  # Owen outputs: holding register 50
MV110 = 17  # Owen inputs: register 51 on FC04 and FC03
OWEN_ONE = 18  # outputs and inputs on one module: holding 50..51, input register 51
FC_COILS, FC_INPUTS, FC_HOLDING, FC_INPUT_REGS = 1, 2, 3, 4


def _bits(count: int = 48) -> list[SimData]:
    return [SimData(0, values=[False] * count, datatype=DataType.BITS)]


def _registers(address: int, count: int) -> list[SimData]:
    return [SimData(address, count=count, values=0, datatype=DataType.REGISTERS)]


def _none() -> list[SimData]:
    return [SimData(0, count=1, datatype=DataType.INVALID)]


def _fail_first_write() -> Callable[..., Awaitable[ExcCodes | None]]:
    failed = []

    async def action(function_code: int, *_args: object) -> ExcCodes | None:
        if function_code == 5 and not failed:
            failed.append(function_code)
            return ExcCodes.DEVICE_FAILURE
        return None
    return action


class IoServer:
    """A real Modbus TCP server with IO modules of both families; it records every request."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[ModbusPDU] = []
        self.server = ModbusTcpServer([
            absent_devices(),
            SimDevice(BITS, (_bits(), _bits(), _none(), _none())),
            SimDevice(FLAKY, (_bits(), _bits(), _none(), _none()), action=_fail_first_write()),
            SimDevice(WATCHED, (_bits(300), _bits(), _registers(WATCHDOG_TIMEOUT_REGISTER, 1), _none())),
            SimDevice(MU110, (_bits(16), _bits(16), _registers(50, 1), _none())),
            SimDevice(MV110, (_bits(16), _bits(16), _registers(51, 1), _registers(51, 1))),
            SimDevice(OWEN_ONE, (_bits(16), _bits(16), _registers(50, 2), _registers(51, 1))),
        ], address=("127.0.0.1", self.port), trace_pdu=self._trace)

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests.append(pdu)
        return pdu

    @property
    def bus(self) -> ModbusTcpBus:
        return ModbusTcpBus(kind="modbus_tcp", host="127.0.0.1", port=self.port, timeout_s=0.5)

    async def set(self, device_id: int, table: int, address: int, values: list[int] | list[bool]) -> None:
        await self.server.async_setValues(device_id, table, address, values)

    async def get(self, device_id: int, table: int, address: int, count: int = 1) -> list[int] | list[bool]:
        return await self.server.async_getValues(device_id, table, address, count)


@pytest.fixture
async def server() -> AsyncIterator[IoServer]:
    io_server = IoServer()
    await io_server.server.serve_forever(background=True)
    try:
        yield io_server
    finally:
        await io_server.server.shutdown()


@pytest.fixture
async def hub(server: IoServer) -> AsyncIterator[ModbusHub]:
    modbus_hub = ModbusHub("testbus", server.bus)
    try:
        yield modbus_hub
    finally:
        await modbus_hub.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def config(**fields: object) -> IoModuleConfig:
    return IoModuleConfig.model_validate({"bus": "testbus", **fields})


def icpdas(device_id: int = BITS, **fields: object) -> IoModuleConfig:
    inputs = {"estop": {"address": 32, "polarity": "nc"}, "door": {"address": 33, "polarity": "nc"},
              "imd_alarm": 34}
    return config(device_id=device_id, layout="bits", inputs=inputs, fans=[2], **fields)


TWO_CONTACTORS = {1: ContactorWiring(0, IoPoint(address=40)), 2: ContactorWiring(1, IoPoint(address=41))}


def owen_split() -> IoModuleConfig:
    inputs = {"estop": {"address": 0, "polarity": "nc"}, "door": {"address": 1, "polarity": "nc"},
              "breaker": 3}
    return config(device_id=MU110, input_device_id=MV110, layout="owen", inputs=inputs, fans=[2])


OWEN_CONTACTORS = {1: ContactorWiring(0, IoPoint(address=4)), 2: ContactorWiring(1, IoPoint(address=5))}
PM1_TO_1, PM2_TO_1 = link_key("pm1", 1), link_key("pm2", 1)
WITH_LINKS = {**TWO_CONTACTORS, PM1_TO_1: ContactorWiring(10, IoPoint(address=42)),
              PM2_TO_1: ContactorWiring(11, IoPoint(address=43))}


@pytest.mark.parametrize(("polarity", "level", "pressed"), [
    (Polarity.NC, True, False), (Polarity.NC, False, True),
    (Polarity.NO, True, True), (Polarity.NO, False, False)])
async def test_an_input_reads_through_its_polarity(hub: ModbusHub, server: IoServer, polarity: Polarity,
                                                   level: bool, pressed: bool) -> None:
    io = IoModule(hub, config(device_id=BITS, inputs={"estop": {"address": 5, "polarity": polarity}}),
                  {1: ContactorWiring(0)})
    await server.set(BITS, FC_INPUTS, 5, [level])
    assert (await io.poll()).estop_pressed is pressed


async def test_icpdas_style_module_reads_every_input_and_output_in_one_request(
        hub: ModbusHub, server: IoServer) -> None:
    io = IoModule(hub, icpdas(input_function=1), TWO_CONTACTORS)
    assert io.requests_per_poll == 1
    await server.set(BITS, FC_COILS, 32, [True, False, True])  # e-stop healthy, door open, IMD alarm
    await server.set(BITS, FC_COILS, 40, [True])  # connector 1's contact closed
    await server.set(BITS, FC_COILS, 2, [True])  # fans running
    server.requests.clear()
    snapshot = await io.poll()
    assert [(pdu.function_code, pdu.address, pdu.count) for pdu in server.requests] == [(1, 0, 42)]
    assert (snapshot.estop_pressed, snapshot.door_open, snapshot.imd_alarm, snapshot.fans_on) == (
        False, True, True, True)
    assert dict(snapshot.contactor_feedback) == {1: True, 2: False}
    assert snapshot.spd_tripped is None and snapshot.breaker_tripped is None and snapshot.fan_alarm is None


async def test_discrete_inputs_and_the_coil_read_back_take_two_requests(hub: ModbusHub,
                                                                        server: IoServer) -> None:
    io = IoModule(hub, icpdas(), TWO_CONTACTORS)
    await server.set(BITS, FC_INPUTS, 32, [True, True, False])
    server.requests.clear()
    snapshot = await io.poll()
    assert sorted((pdu.function_code, pdu.address, pdu.count) for pdu in server.requests) == [
        (1, 0, 3), (2, 32, 10)]
    assert (snapshot.estop_pressed, snapshot.door_open, snapshot.imd_alarm) == (False, False, False)


async def test_coils_are_written_and_read_back(hub: ModbusHub, server: IoServer) -> None:
    io = IoModule(hub, icpdas(), TWO_CONTACTORS)
    await io.set_contactor(2, True)
    await io.set_fans(True)
    assert await server.get(BITS, FC_COILS, 0, 3) == [False, True, True]
    snapshot = await io.poll()
    assert dict(snapshot.contactors_closed) == {1: False, 2: True}
    assert snapshot.fans_on and snapshot.outputs_as_commanded
    with pytest.raises(KeyError):
        await io.set_contactor(3, True)


async def test_owen_modules_poll_in_two_requests_and_decode_the_input_bitmask(
        hub: ModbusHub, server: IoServer) -> None:
    io = IoModule(hub, owen_split(), OWEN_CONTACTORS)
    assert io.requests_per_poll == 2
    await server.set(MV110, FC_INPUT_REGS, 51, [0b011001])  # e-stop ok, door open, breaker, contact 1
    server.requests.clear()
    snapshot = await io.poll()
    assert sorted((pdu.dev_id, pdu.function_code, pdu.address, pdu.count) for pdu in server.requests) == [
        (MU110, 3, 50, 1), (MV110, 4, 51, 1)]
    assert (snapshot.estop_pressed, snapshot.door_open, snapshot.breaker_tripped) == (False, True, True)
    assert dict(snapshot.contactor_feedback) == {1: True, 2: False}


async def test_owen_outputs_are_written_whole_from_the_driver_image_never_read_first(
        hub: ModbusHub, server: IoServer) -> None:
    io = IoModule(hub, owen_split(), OWEN_CONTACTORS)
    await server.set(MU110, FC_HOLDING, 50, [0b1000_0000])  # a bit the station does not own
    server.requests.clear()
    await io.set_contactor(2, True)
    assert [(pdu.function_code, pdu.address) for pdu in server.requests] == [(16, 50)]
    assert await server.get(MU110, FC_HOLDING, 50) == [0b010]
    await io.set_fans(True)
    await io.set_contactor(1, True)
    assert await server.get(MU110, FC_HOLDING, 50) == [0b111]
    await io.set_contactor(2, False)
    assert await server.get(MU110, FC_HOLDING, 50) == [0b101]
    snapshot = await io.poll()
    assert dict(snapshot.contactors_closed) == {1: True, 2: False} and snapshot.fans_on


async def test_one_owen_module_with_fc03_inputs_reads_in_one_request(hub: ModbusHub,
                                                                     server: IoServer) -> None:
    io = IoModule(hub, config(device_id=OWEN_ONE, layout="owen", input_function=3,
                              inputs={"estop": {"address": 0, "polarity": "nc"}}), OWEN_CONTACTORS)
    await server.set(OWEN_ONE, FC_HOLDING, 50, [0b01, 0b010001])  # coil 1 on; e-stop ok, contact 1
    server.requests.clear()
    snapshot = await io.poll()
    assert [(pdu.function_code, pdu.address, pdu.count) for pdu in server.requests] == [(3, 50, 2)]
    assert not snapshot.estop_pressed
    assert dict(snapshot.contactors_closed) == {1: True, 2: False}
    assert dict(snapshot.contactor_feedback) == {1: True, 2: False}
    assert not snapshot.outputs_as_commanded, "coil 1 is on but the driver never switched it on"


async def test_a_contactor_that_does_not_follow_its_coil_is_reported_after_the_timeout(
        hub: ModbusHub, server: IoServer) -> None:
    clock = Clock()
    io = IoModule(hub, icpdas(feedback_timeout_s=0.5), TWO_CONTACTORS, clock=clock)
    await server.set(BITS, FC_INPUTS, 32, [True])  # e-stop healthy
    await io.set_contactor(1, True)
    clock.now = 0.4
    assert dict((await io.poll()).contactor_faults) == {}
    clock.now = 0.6
    assert dict((await io.poll()).contactor_faults) == {1: ContactorFault.NOT_CLOSING}
    await server.set(BITS, FC_INPUTS, 40, [True])
    snapshot = await io.poll()
    assert dict(snapshot.contactor_faults) == {} and snapshot.contactor_feedback[1]

    clock.now = 1.0
    await io.set_contactor(1, False)  # the contact stays closed: welded
    clock.now = 1.4
    assert dict((await io.poll()).contactor_faults) == {}
    clock.now = 1.6
    assert dict((await io.poll()).contactor_faults) == {1: ContactorFault.WELDED}


async def test_a_coil_the_module_dropped_is_outputs_lost_not_a_weld(hub: ModbusHub, server: IoServer) -> None:
    clock = Clock()
    io = IoModule(hub, icpdas(feedback_timeout_s=0.5), TWO_CONTACTORS, clock=clock)
    await server.set(BITS, FC_INPUTS, 32, [True])
    await io.set_contactor(1, True)
    await server.set(BITS, FC_INPUTS, 40, [True])
    clock.now = 5.0
    await server.set(BITS, FC_COILS, 0, [False])  # the host watchdog tripped
    snapshot = await io.poll()
    assert not snapshot.outputs_as_commanded and not snapshot.contactors_closed[1]
    await server.set(BITS, FC_INPUTS, 40, [False])  # the contact follows the dropped coil
    clock.now = 6.0
    snapshot = await io.poll()
    assert dict(snapshot.contactor_faults) == {}
    assert io.outputs[0], "the driver still wants the contactor closed"


async def test_contacts_opened_by_the_estop_are_not_a_fault(hub: ModbusHub, server: IoServer) -> None:
    clock = Clock()
    io = IoModule(hub, icpdas(feedback_timeout_s=0.5), TWO_CONTACTORS, clock=clock)
    await server.set(BITS, FC_INPUTS, 32, [True])
    await io.set_contactor(1, True)
    await server.set(BITS, FC_INPUTS, 40, [True])
    assert dict((await io.poll()).contactor_faults) == {}
    await server.set(BITS, FC_INPUTS, 32, [False])  # e-stop: the coil circuit is cut
    await server.set(BITS, FC_INPUTS, 40, [False])
    clock.now = 2.0
    snapshot = await io.poll()
    assert snapshot.estop_pressed and snapshot.contactors_closed[1]
    assert dict(snapshot.contactor_faults) == {}


async def test_an_output_whose_write_failed_is_sent_again_with_the_next_write(
        hub: ModbusHub, server: IoServer) -> None:
    io = IoModule(hub, icpdas(device_id=FLAKY), TWO_CONTACTORS)
    with pytest.raises(DeviceError, match="exception 4"):
        await io.set_contactor(1, True)
    await io.set_contactor(2, True)
    assert await server.get(FLAKY, FC_COILS, 0, 2) == [True, True]


async def test_a_module_that_does_not_answer_is_a_device_error(hub: ModbusHub) -> None:
    io = IoModule(hub, icpdas(device_id=99), TWO_CONTACTORS)
    with pytest.raises(DeviceError, match="testbus/99"):
        await io.poll()
    with pytest.raises(DeviceError, match="testbus/99"):
        await io.set_contactor(1, False)


async def test_link_contactors_switch_and_read_back_beside_the_connector_contactors(
        hub: ModbusHub, server: IoServer) -> None:
    io = IoModule(hub, icpdas(), WITH_LINKS)
    await io.set_link("pm2", 1, True)
    assert await server.get(BITS, FC_COILS, 10, 2) == [False, True]
    await server.set(BITS, FC_INPUTS, 32, [True])  # e-stop healthy
    await server.set(BITS, FC_INPUTS, 43, [True])  # pm2>1's auxiliary contact closed
    server.requests.clear()
    snapshot = await io.poll()
    assert len(server.requests) == 2, "links add no request: one coil span, one input span"
    assert dict(snapshot.contactors_closed) == {1: False, 2: False, PM1_TO_1: False, PM2_TO_1: True}
    assert dict(snapshot.contactor_feedback) == {1: False, 2: False, PM1_TO_1: False, PM2_TO_1: True}
    assert dict(snapshot.contactor_faults) == {} and snapshot.outputs_as_commanded
    with pytest.raises(KeyError):
        await io.set_link("pm3", 1, True)  # not wired
    with pytest.raises(KeyError):
        await io.set_link("pm1", 2, True)


async def test_open_all_opens_every_contactor_and_link_in_one_request_per_run_of_coils(
        hub: ModbusHub, server: IoServer) -> None:
    io = IoModule(hub, icpdas(), WITH_LINKS)
    for connector_id in (1, 2):
        await io.set_contactor(connector_id, True)
    for module in ("pm1", "pm2"):
        await io.set_link(module, 1, True)
    server.requests.clear()
    await io.open_all()
    assert [pdu.function_code for pdu in server.requests] == [15, 15], "coils 0-1 and 10-11: two runs"
    assert await server.get(BITS, FC_COILS, 0, 2) == [False, False]
    assert await server.get(BITS, FC_COILS, 10, 2) == [False, False]


async def test_open_all_on_a_lost_module_fails_after_one_request_and_resends_with_the_next_write(
        hub: ModbusHub, server: IoServer) -> None:
    io = IoModule(hub, icpdas(device_id=99), WITH_LINKS)
    server.requests.clear()
    with pytest.raises(DeviceError, match="testbus/99"):
        await io.open_all()
    assert len(server.requests) == 1, "a lost module costs one exchange (one timeout), not one per coil"


async def test_a_link_that_does_not_follow_its_coil_is_reported_like_a_contactor(
        hub: ModbusHub, server: IoServer) -> None:
    clock = Clock()
    io = IoModule(hub, icpdas(feedback_timeout_s=0.5), WITH_LINKS, clock=clock)
    await server.set(BITS, FC_INPUTS, 32, [True])
    await io.set_link("pm1", 1, True)
    clock.now = 0.6
    assert dict((await io.poll()).contactor_faults) == {PM1_TO_1: ContactorFault.NOT_CLOSING}
    await server.set(BITS, FC_INPUTS, 42, [True])
    assert dict((await io.poll()).contactor_faults) == {}
    await io.set_link("pm1", 1, False)  # the contact stays closed: welded
    clock.now = 1.0
    assert dict((await io.poll()).contactor_faults) == {}
    clock.now = 1.2
    assert dict((await io.poll()).contactor_faults) == {PM1_TO_1: ContactorFault.WELDED}


async def test_links_opened_by_the_estop_are_not_a_fault(hub: ModbusHub, server: IoServer) -> None:
    clock = Clock()
    io = IoModule(hub, icpdas(feedback_timeout_s=0.5), WITH_LINKS, clock=clock)
    await server.set(BITS, FC_INPUTS, 32, [True])
    await io.set_link("pm2", 1, True)
    await server.set(BITS, FC_INPUTS, 43, [True])
    assert dict((await io.poll()).contactor_faults) == {}
    await server.set(BITS, FC_INPUTS, 32, [False])  # e-stop: the coil circuit is cut
    await server.set(BITS, FC_INPUTS, 43, [False])
    clock.now = 2.0
    assert dict((await io.poll()).contactor_faults) == {}


def linked_station(port: int, **io_fields: object) -> StationConfig:
    meter = {"bus": "testbus", "device_id": 1, "model": "acudc243"}
    return StationConfig.model_validate({
        "station": {"max_power_kw": 100},
        "buses": {"testbus": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": port}},
        "io_module": {"bus": "testbus", "device_id": WATCHED, "inputs": {"estop": 32}, **io_fields},
        "rfid": {"port": "/dev/null"},
        "power_modules": {"channel": "/dev/null", "count": 2, "links": [
            {"connector": 1, "module": "pm1", "coil": 10, "feedback": 42},
            {"connector": 1, "module": "pm2", "coil": 11}]},
        "connectors": [{"id": 1, "standard": "CCS", "max_power_kw": 60, "contactor_coil": 0,
                        "contactor_feedback": 40, "meter": meter,
                        "controller": {"bus": "testbus", "device_id": 21}}],
    })


async def test_from_config_drives_the_links_and_the_host_watchdog_drops_their_coils_too(
        hub: ModbusHub, server: IoServer) -> None:
    io = IoModule.from_config(linked_station(server.port, watchdog_s=1.0), {"testbus": hub})
    assert dict(io.contactors) == {1: ContactorWiring(0, IoPoint(address=40)),
                                   PM1_TO_1: ContactorWiring(10, IoPoint(address=42)),
                                   PM2_TO_1: ContactorWiring(11)}
    server.requests.clear()
    await io.poll()  # the first poll programs the watchdog
    safe_values = {pdu.address for pdu in server.requests if pdu.function_code == 5}
    assert {SAFE_VALUE_COIL_BASE + coil for coil in (0, 10, 11)} <= safe_values
    await io.set_link("pm1", 1, True)
    assert await server.get(WATCHED, FC_COILS, 10) == [True]
    snapshot = await io.poll()
    assert snapshot.contactors_closed[PM1_TO_1] and PM2_TO_1 not in snapshot.contactor_feedback


def test_reads_are_planned_per_device_and_table_and_split_at_the_modbus_limit() -> None:
    coils = FunctionCode.READ_COILS
    holding = FunctionCode.READ_HOLDING_REGISTERS
    bits = [WireBit(1, coils, 0), WireBit(1, coils, 1999), WireBit(1, coils, 2000), WireBit(1, coils, 4100),
            WireBit(2, holding, 50, 3), WireBit(2, holding, 50, 7), WireBit(2, holding, 174),
            WireBit(2, holding, 175)]
    assert plan_reads(bits) == [
        ReadRequest(1, coils, 0, 2000), ReadRequest(1, coils, 2000, 1), ReadRequest(1, coils, 4100, 1),
        ReadRequest(2, holding, 50, 125), ReadRequest(2, holding, 175, 1),
    ]
