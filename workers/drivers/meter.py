"""The one generic energy-meter decoder: any register map in, a typed snapshot out.

`plan_blocks` groups a map's registers into the fewest contiguous read requests the meter
allows; `decode_blocks` turns the words those requests returned into a `MeterSnapshot`.
Both are pure, so they are tested on raw register words. `MeterDriver` runs them over a
`ModbusHub`. The simulator uses `encode_quantities` to serve the same map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workers.drivers.errors import DeviceError
from workers.drivers.meter_maps import MeterMap, MeterRegister, Quantity, meter_map
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import FunctionCode, RegisterValueError, decode, encode


@dataclass(frozen=True)
class MeterSnapshot:
    """One reading of a meter, in base units; voltage/current are None if the model lacks them."""

    energy_wh: float  # import register, Wh
    power_w: float  # total active power, W
    voltage_v: float | None  # L1-N (AC) or DC voltage, V
    current_a: float | None  # L1 (AC) or DC current, A


@dataclass(frozen=True)
class ReadBlock:
    """One read request: `count` registers of `table` from `address`."""

    table: FunctionCode
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count

    def covers(self, register: MeterRegister) -> bool:
        return (register.table is self.table and self.address <= register.address
                and register.address + register.data_type.words <= self.end)


def plan_blocks(meter: MeterMap) -> tuple[ReadBlock, ...]:
    """The fewest reads covering every register: neighbours in one table share a block while
    the gap between them is at most `max_gap_registers` and the block stays within
    `max_block_registers`."""
    ordered = sorted(meter.registers, key=lambda r: (r.table, r.address))
    blocks: list[ReadBlock] = []
    for register in ordered:
        end = register.address + register.data_type.words
        last = blocks[-1] if blocks else None
        if (last is not None and last.table is register.table
                and register.address - last.end <= meter.max_gap_registers
                and max(end, last.end) - last.address <= meter.max_block_registers):
            blocks[-1] = ReadBlock(last.table, last.address, max(end, last.end) - last.address)
        else:
            blocks.append(ReadBlock(register.table, register.address, register.data_type.words))
    return tuple(blocks)


def decode_blocks(meter: MeterMap, blocks: tuple[ReadBlock, ...], words: list[list[int]]) -> MeterSnapshot:
    """Decode the words read for `blocks` (same order). Raises RegisterValueError on words that
    are not a usable reading (wrong length, NaN/infinite, negative energy)."""
    if len(words) != len(blocks):
        raise RegisterValueError(f"{len(blocks)} blocks planned, {len(words)} answered")
    values: dict[Quantity, float] = {}
    for register in meter.registers:
        index, block = _block_for(register, blocks)
        if len(words[index]) != block.count:
            raise RegisterValueError(f"block @{block.address} needs {block.count} words, "
                                     f"got {len(words[index])}")
        offset = register.address - block.address
        raw = decode(words[index][offset:offset + register.data_type.words],
                     register.data_type, register.word_order)
        value = raw * register.factor
        if not math.isfinite(value):
            raise RegisterValueError(f"{register.quantity} is {value}")
        values[register.quantity] = value
    if values[Quantity.ENERGY_IMPORT] < 0:
        raise RegisterValueError(f"import energy is negative: {values[Quantity.ENERGY_IMPORT]}")
    return MeterSnapshot(
        energy_wh=values[Quantity.ENERGY_IMPORT],
        power_w=values[Quantity.POWER],
        voltage_v=values.get(Quantity.VOLTAGE),
        current_a=values.get(Quantity.CURRENT),
    )


def _block_for(register: MeterRegister, blocks: tuple[ReadBlock, ...]) -> tuple[int, ReadBlock]:
    for index, block in enumerate(blocks):
        if block.covers(register):
            return index, block
    raise RegisterValueError(f"no planned block covers {register.quantity} @{register.address}")


def encode_quantities(meter: MeterMap, snapshot: MeterSnapshot) -> list[tuple[MeterRegister, list[int]]]:
    """The words a meter of this model shows for `snapshot` (the simulator serves them)."""
    by_quantity = {
        Quantity.ENERGY_IMPORT: snapshot.energy_wh,
        Quantity.POWER: snapshot.power_w,
        Quantity.VOLTAGE: snapshot.voltage_v,
        Quantity.CURRENT: snapshot.current_a,
    }
    encoded = []
    for register in meter.registers:
        value = by_quantity[register.quantity] or 0.0
        encoded.append((register, encode(value / register.factor, register.data_type, register.word_order)))
    return encoded


class MeterDriver:
    """An energy meter on a Modbus bus, decoded with its model's register map."""

    def __init__(self, hub: ModbusHub, device_id: int, model: str) -> None:
        self.hub = hub
        self.device_id = device_id
        self.map = meter_map(model)
        self.blocks = plan_blocks(self.map)

    async def poll(self) -> MeterSnapshot:
        """Read every block and decode; any failure is a DeviceError."""
        words = [await self.hub.read_registers(self.device_id, block.table, block.address, block.count)
                 for block in self.blocks]
        try:
            return decode_blocks(self.map, self.blocks, words)
        except RegisterValueError as error:
            raise DeviceError(self.hub.device_name(self.device_id), f"unusable reading: {error}") from error
