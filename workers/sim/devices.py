"""pymodbus SimDevices for the simulated station: meters, charge controllers, the IO module.

Each device uses the tuple form (coils, discrete inputs, holding, input registers) so FC03
and FC04 are separate tables as on real devices (reference/hardware.md §7.4). Tables a device
does not have are served as invalid addresses or refused with ILLEGAL_FUNCTION, and a device
id nobody configured answers "gateway target failed to respond" (exception 0x0B), the answer
of a Modbus TCP gateway whose RS485 device is silent, never data as if it existed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from workers.drivers.meter import ReadBlock, plan_blocks
from workers.drivers.meter_maps import MeterMap
from workers.drivers.registers import FunctionCode
from workers.sim.ev_controller_wire import ControllerPort

ANY_DEVICE = 0  # pymodbus: id 0 = every id not defined otherwise
BITS_PER_WORD = 16
ADDRESS_SPACE = 0x10000
_BIT_FUNCTIONS = frozenset({1, 2, 5, 15})
# pymodbus SimDevice action: (function code, table start, address, count, registers, values written)
DeviceAction = Callable[[int, int, int, int, list[int], list[int] | list[bool] | None],
                        Awaitable[ExcCodes | None]]
_REGISTER_WRITES = frozenset({6, 16, 22, 23})


async def _no_bits(function_code: int, _start: int, _address: int, _count: int,
                   _registers: list[int], _values: list[int] | list[bool] | None) -> ExcCodes | None:
    """Meters have no coils or discrete inputs."""
    return ExcCodes.ILLEGAL_FUNCTION if function_code in _BIT_FUNCTIONS else None


async def _read_only_meter(function_code: int, start: int, address: int, count: int,
                           registers: list[int], values: list[int] | list[bool] | None) -> ExcCodes | None:
    """Measurements cannot be written by a client (the simulator itself writes with FC03/FC04)."""
    if function_code in _REGISTER_WRITES:
        return ExcCodes.ILLEGAL_ADDRESS
    return await _no_bits(function_code, start, address, count, registers, values)


async def _absent(*_args: object) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


def _no_bits_table() -> list[SimData]:
    return [SimData(0, values=[False] * BITS_PER_WORD, datatype=DataType.BITS)]


def _no_registers_table() -> list[SimData]:
    return [SimData(0, count=1, datatype=DataType.INVALID)]


def meter_blocks(meter: MeterMap) -> list[ReadBlock]:
    """One zero-filled span per table from the first to the last mapped register, so any
    grouping a driver chooses within the map is answered, as by a real meter."""
    spans: list[ReadBlock] = []
    for table in (FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS):
        blocks = [block for block in plan_blocks(meter) if block.table is table]
        if blocks:
            start, end = blocks[0].address, max(block.end for block in blocks)
            spans.append(ReadBlock(table, start, end - start))
    return spans


def meter_device(device_id: int, meter: MeterMap) -> SimDevice:
    tables: dict[FunctionCode, list[SimData]] = {
        FunctionCode.READ_HOLDING_REGISTERS: _no_registers_table(),
        FunctionCode.READ_INPUT_REGISTERS: _no_registers_table(),
    }
    for span in meter_blocks(meter):
        tables[span.table] = [SimData(span.address, count=span.count, values=0, datatype=DataType.REGISTERS)]
    return SimDevice(device_id, (_no_bits_table(), _no_bits_table(),
                                 tables[FunctionCode.READ_HOLDING_REGISTERS],
                                 tables[FunctionCode.READ_INPUT_REGISTERS]),
                     action=_read_only_meter)


def controller_device(device_id: int) -> SimDevice:
    """A charge controller: every address of every table goes to its `ControllerPort`, where
    the simulated controller attached to it answers as its configured model does (station
    protocol or Phoenix map, workers/sim/ev_controller_wire.py); 0x0B until one is attached."""
    def bits() -> list[SimData]:
        return [SimData(0, values=[False] * ADDRESS_SPACE, datatype=DataType.BITS)]

    def registers() -> list[SimData]:
        return [SimData(0, count=ADDRESS_SPACE, values=0, datatype=DataType.REGISTERS)]

    return SimDevice(device_id, (bits(), bits(), registers(), registers()), action=ControllerPort().answer)


def io_device(device_id: int, *, coils: int, discrete_inputs: int, holding: tuple[int, int] | None,
              input_registers: tuple[int, int] | None, action: DeviceAction) -> SimDevice:
    """A DI/DO module: `coils` and `discrete_inputs` bits from address 0 (whole words of 16),
    and (first register, count) spans for modules that pack channels into registers (Owen).
    A table the module lacks is a placeholder its `action` refuses (workers/sim/io_module.py)."""
    def bits(count: int) -> list[SimData]:
        words = max(count, 1) // BITS_PER_WORD + (max(count, 1) % BITS_PER_WORD > 0)
        return [SimData(0, values=[False] * (words * BITS_PER_WORD), datatype=DataType.BITS)]

    def registers(span: tuple[int, int] | None) -> list[SimData]:
        if span is None:
            return _no_registers_table()
        return [SimData(span[0], count=span[1], values=0, datatype=DataType.REGISTERS)]

    return SimDevice(device_id, (bits(coils), bits(discrete_inputs), registers(holding),
                                 registers(input_registers)), action=action)


def absent_devices() -> SimDevice:
    """Every id not configured on the bus: the whole address space answers exception 0x0B.
    (pymodbus checks the address before calling the action, so the space must be defined.)"""
    def bits() -> list[SimData]:
        return [SimData(0, values=[False] * ADDRESS_SPACE, datatype=DataType.BITS)]

    def registers() -> list[SimData]:
        return [SimData(0, count=ADDRESS_SPACE, values=0, datatype=DataType.REGISTERS)]

    return SimDevice(ANY_DEVICE, (bits(), bits(), registers(), registers()), action=_absent)
