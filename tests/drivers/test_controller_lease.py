"""The lease of the station controller protocol v2 (docs/controller-protocol.md): its words, and
the driver writing command and lease in one FC16 request against a real pymodbus server (v2)
and leaving the lease out for a v1 controller. (Phoenix EV-CC has no lease register: its
driver takes `lease_s` and ignores it, see its module docstring.)"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from workers.common.redis_server import free_port
from workers.common.station_config import ModbusTcpBus
from workers.drivers.controllers.interface import LeaseState, OutputLimits
from workers.drivers.controllers.station_dc import (
    StationDcController,
    decode_inputs,
    decode_lease,
    encode_inputs,
    encode_lease,
)
from workers.drivers.modbus_hub import ModbusHub

U = 0xFFFF
DEVICE = 21
IDLE_V1 = [0, U, U, 0, 0, 0, 0, 0, U, U, U, U, U, U]


@pytest.mark.parametrize(("lease_s", "word"), [
    (None, 0), (0, 0), (0.1, 1), (1.0, 10), (2.0, 20), (0.99, 9), (60.0, 600),
])
def test_lease_encodes_in_tenths_of_a_second_rounded_down(lease_s, word) -> None:
    assert encode_lease(lease_s) == word


@pytest.mark.parametrize("lease_s", [0.05, -1.0, 60.1, float("nan"), float("inf")])
def test_a_lease_outside_the_protocol_is_refused(lease_s) -> None:
    with pytest.raises(ValueError, match="lease"):
        encode_lease(lease_s)


def test_lease_word_decodes_to_seconds_and_refuses_beyond_its_range() -> None:
    assert (decode_lease(0), decode_lease(15), decode_lease(600)) == (None, 1.5, 60.0)
    with pytest.raises(ValueError, match="lease_ds 601"):
        decode_lease(601)


@pytest.mark.parametrize(("word", "state"), [(0, LeaseState.NONE), (1, LeaseState.RUNNING),
                                             (2, LeaseState.EXPIRED)])
def test_v2_fast_block_carries_the_lease_state(word, state) -> None:
    snapshot = decode_inputs([*IDLE_V1, word])
    assert snapshot.lease is state
    assert encode_inputs(snapshot) == [*IDLE_V1, word]


def test_v1_fast_block_has_no_lease_and_a_bad_lease_state_is_refused() -> None:
    assert decode_inputs(IDLE_V1).lease is None
    assert encode_inputs(decode_inputs(IDLE_V1)) == IDLE_V1
    with pytest.raises(ValueError, match="lease_state 3"):
        decode_inputs([*IDLE_V1, 3])


@dataclass
class Controller:
    """A v1 or v2 controller's tables on a real server; `writes` = (address, count) per write."""

    hub: ModbusHub
    server: ModbusTcpServer
    writes: list[tuple[int, int]] = field(default_factory=list)

    async def holding(self, count: int) -> list[int]:
        return list(await self.server.async_getValues(DEVICE, 3, 0, count))


def _device(version: int, writes: list[tuple[int, int]]) -> SimDevice:
    holding = [0, 0, U, U] + ([0] if version == 2 else [])
    inputs = IDLE_V1 + ([0] if version == 2 else [])

    async def record(function_code, _start, address, count, _registers, values):
        if values and function_code in (6, 16):
            writes.append((address, count))

    registers = DataType.REGISTERS
    return SimDevice(DEVICE, (
        [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
        [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
        [SimData(0, values=holding, datatype=registers), SimData(10, values=[0], datatype=registers)],
        [SimData(0, values=inputs, datatype=registers),
         SimData(100, values=[version, 1, 0, 0, 0], datatype=registers)],
    ), action=record)


@pytest.fixture
async def controller(request) -> AsyncIterator[Controller]:
    writes: list[tuple[int, int]] = []
    address = ("127.0.0.1", free_port())
    server = ModbusTcpServer([_device(request.param, writes)], address=address)
    await server.serve_forever(background=True)
    hub = ModbusHub("b", ModbusTcpBus(kind="modbus_tcp", host=address[0], port=address[1], timeout_s=0.5))
    try:
        yield Controller(hub, server, writes)
    finally:
        await hub.close()
        await server.shutdown()


@pytest.mark.parametrize("controller", [2], indirect=True)
async def test_v2_command_and_lease_go_out_in_one_request(controller: Controller) -> None:
    driver = StationDcController(controller.hub, DEVICE)
    await driver.set_output(True, 22_050.0, lease_s=1.5)
    assert await controller.holding(5) == [1, 220, U, U, 15]
    await driver.set_limits(OutputLimits(power_w=30_000.0, current_a=80.0), lease_s=2.0)
    assert await controller.holding(5) == [1, 300, 800, U, 20]
    await driver.set_enabled(False, lease_s=1.0)
    assert await controller.holding(5) == [0, 300, 800, U, 10]
    assert controller.writes == [(0, 5), (1, 4), (0, 5)]  # one request each, from the command to lease_ds
    assert await driver.read_lease() == 1.0
    assert (await driver.poll()).lease is LeaseState.NONE


@pytest.mark.parametrize("controller", [2], indirect=True)
async def test_without_a_lease_the_v1_request_goes_out(controller: Controller) -> None:
    driver = StationDcController(controller.hub, DEVICE)
    await driver.set_output(True, 50_000.0)
    await driver.set_output(True, 40_000.0, lease_s=0)
    assert controller.writes == [(0, 2), (0, 2)]
    assert await controller.holding(5) == [1, 400, U, U, 0]


@pytest.mark.parametrize("controller", [1], indirect=True)
async def test_a_v1_controller_gets_the_command_without_the_lease_and_a_warning(
        controller: Controller, caplog) -> None:
    driver = StationDcController(controller.hub, DEVICE)
    with caplog.at_level(logging.WARNING):
        await driver.set_output(True, 50_000.0, lease_s=1.0)
        await driver.set_output(True, 40_000.0, lease_s=1.0)
    assert controller.writes == [(0, 2), (0, 2)]
    assert await controller.holding(4) == [1, 400, U, U]
    assert [r.message for r in caplog.records].count(
        "b/21 speaks controller protocol version 1, which has no lease: its output holds until "
        "written again") == 1
    assert (await driver.poll()).lease is None


@pytest.mark.parametrize("controller", [2], indirect=True)
async def test_an_impossible_lease_is_refused_before_anything_is_sent(controller: Controller) -> None:
    with pytest.raises(ValueError, match="lease"):
        await StationDcController(controller.hub, DEVICE).set_output(True, 1_000.0, lease_s=0.01)
    assert controller.writes == []
