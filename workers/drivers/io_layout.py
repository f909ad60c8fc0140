"""Where an IO point lives on the wire, per module layout, and how to read many in few requests.

A station's IO map (station.toml `[io_module]`) names signals by address; what an address is
depends on the module family. "bits" modules (ICP DAS, Advantech) expose each channel as a
coil or discrete input; "owen" modules (Owen MU110/MV110) pack 16 channels into one register.
Both become `WireBit`s here, so the driver reads any mix of inputs and output read-backs with
one request per (device, table) span (`plan_reads`), and writes outputs the way the family
wants: single coils, or the whole output register from the driver's own image (never a
read-modify-write, which would race the module's watchdog and another writer).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

from workers.common.station_config import IoModuleConfig
from workers.drivers.modbus_hub import MAX_READ_BITS, MAX_READ_REGISTERS, ModbusHub
from workers.drivers.registers import FunctionCode

BITS_PER_REGISTER = 16
_BIT_TABLES = frozenset({FunctionCode.READ_COILS, FunctionCode.READ_DISCRETE_INPUTS})


@dataclass(frozen=True)
class WireBit:
    """One channel on the wire: a coil/discrete input, or bit `bit` of a register."""

    device_id: int
    table: FunctionCode
    address: int
    bit: int = 0


@dataclass(frozen=True)
class ReadRequest:
    device_id: int
    table: FunctionCode
    address: int
    count: int


def plan_reads(bits: Iterable[WireBit]) -> list[ReadRequest]:
    """The fewest requests covering every bit: one span per (device, table), split only where
    a span would exceed the Modbus limit for one request."""
    wanted: dict[tuple[int, FunctionCode], set[int]] = defaultdict(set)
    for wire_bit in bits:
        wanted[(wire_bit.device_id, wire_bit.table)].add(wire_bit.address)
    requests = []
    for (device_id, table), addresses in sorted(wanted.items()):
        limit = MAX_READ_BITS if table in _BIT_TABLES else MAX_READ_REGISTERS
        ordered = sorted(addresses)
        start = ordered[0]
        for previous, address in pairwise(ordered):
            if address - start + 1 > limit:
                requests.append(ReadRequest(device_id, table, start, previous - start + 1))
                start = address
        requests.append(ReadRequest(device_id, table, start, ordered[-1] - start + 1))
    return requests


class WireImage:
    """What the planned reads returned: coil/input bits and register words by address."""

    def __init__(self) -> None:
        self._values: dict[tuple[int, FunctionCode, int], int] = {}

    def store(self, request: ReadRequest, values: list[int] | list[bool]) -> None:
        for offset, value in enumerate(values):
            self._values[(request.device_id, request.table, request.address + offset)] = int(value)

    def level(self, wire_bit: WireBit) -> bool:
        raw = self._values[(wire_bit.device_id, wire_bit.table, wire_bit.address)]
        return bool(raw) if wire_bit.table in _BIT_TABLES else bool(raw >> wire_bit.bit & 1)


async def read_image(hub: ModbusHub, requests: list[ReadRequest]) -> WireImage:
    image = WireImage()
    for request in requests:
        if request.table in _BIT_TABLES:
            values: list[int] | list[bool] = await hub.read_bits(
                request.device_id, request.table, request.address, request.count)
        else:
            values = await hub.read_registers(request.device_id, request.table, request.address,
                                              request.count)
        image.store(request, values)
    return image


class IoLayout(Protocol):
    def input_bit(self, address: int) -> WireBit:
        ...

    def output_bit(self, address: int) -> WireBit:
        ...

    async def write(self, hub: ModbusHub, outputs: Mapping[int, bool], changed: set[int]) -> None:
        """Bring the module's outputs to `outputs` (the driver's whole desired image);
        `changed` are the ones that may differ from what the module holds."""
        ...


@dataclass(frozen=True)
class BitsLayout:
    """Coils out (FC05 for one, FC15 for a run of consecutive ones), discrete inputs in (FC02),
    or inputs in the coil table (FC01)."""

    device_id: int
    inputs_device_id: int
    input_table: FunctionCode

    def input_bit(self, address: int) -> WireBit:
        return WireBit(self.inputs_device_id, self.input_table, address)

    def output_bit(self, address: int) -> WireBit:
        return WireBit(self.device_id, FunctionCode.READ_COILS, address)

    async def write(self, hub: ModbusHub, outputs: Mapping[int, bool], changed: set[int]) -> None:
        for first, count in consecutive_runs(changed):
            if count == 1:
                await hub.write_coil(self.device_id, first, outputs[first])
            else:
                await hub.write_coils(self.device_id, first, [outputs[first + i] for i in range(count)])


@dataclass(frozen=True)
class RegisterBitmaskLayout:
    """Outputs are bits of holding registers from `output_register` (written whole, FC16);
    inputs are bits of registers from `input_register` (FC04 or FC03)."""

    device_id: int
    inputs_device_id: int
    input_table: FunctionCode
    output_register: int
    input_register: int

    def input_bit(self, address: int) -> WireBit:
        register, bit = divmod(address, BITS_PER_REGISTER)
        return WireBit(self.inputs_device_id, self.input_table, self.input_register + register, bit)

    def output_bit(self, address: int) -> WireBit:
        register, bit = divmod(address, BITS_PER_REGISTER)
        return WireBit(self.device_id, FunctionCode.READ_HOLDING_REGISTERS, self.output_register + register,
                       bit)

    async def write(self, hub: ModbusHub, outputs: Mapping[int, bool], changed: set[int]) -> None:
        await hub.write_registers(self.device_id, self.output_register, output_words(outputs))


def consecutive_runs(addresses: set[int]) -> list[tuple[int, int]]:
    """(first address, count) of each run of consecutive addresses, in order."""
    runs: list[tuple[int, int]] = []
    for address in sorted(addresses):
        if runs and runs[-1][0] + runs[-1][1] == address:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((address, 1))
    return runs


def output_words(outputs: Mapping[int, bool]) -> list[int]:
    """The bitmask registers holding `outputs` (bit n in word n // 16); unmapped bits are off."""
    words = [0] * (max(outputs, default=0) // BITS_PER_REGISTER + 1)
    for address, on in outputs.items():
        if on:
            register, bit = divmod(address, BITS_PER_REGISTER)
            words[register] |= 1 << bit
    return words


def layout_for(config: IoModuleConfig) -> IoLayout:
    table = FunctionCode(config.inputs_function)
    if config.layout == "bits":
        return BitsLayout(config.device_id, config.inputs_device_id, table)
    output_register, input_register = config.owen_registers
    return RegisterBitmaskLayout(config.device_id, config.inputs_device_id, table, output_register,
                                 input_register)
