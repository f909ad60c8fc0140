"""The one generic energy-meter decoder: any register map in, a typed snapshot out.

`plan_blocks` groups a map's registers into the fewest contiguous read requests the meter
allows; `decode_blocks` turns the words those requests returned into a `MeterSnapshot`.
Both are pure, so they are tested on raw register words. `MeterDriver` runs them over a
`ModbusHub`; `identify` tells `hw probe` which models a device answers like. The simulator
uses `encode_quantities` to serve the same map.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from workers.drivers.errors import DeviceError
from workers.drivers.meter_maps import METER_MAPS, MeterMap, MeterRegister, Quantity, ReadBlock, meter_map
from workers.drivers.meter_maps.blocks import minimal_span_blocks, plan_spans
from workers.drivers.meter_maps.schema import DIMENSIONS, REQUIRED, Dimension
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import DataType, FunctionCode, RegisterValueError, decode, encode

EXPONENT_TYPE = DataType.INT16
EXPONENT_RANGE = range(0, 10)  # decimal exponents a meter sends (Acrel: 10^(exp-3)); the simulator's choice
MAX_EXPONENT_MAGNITUDE = 12  # a larger exponent register is garbage, not a value
POWER_FACTOR_TOLERANCE = 0.01  # meters round |PF| of 1 slightly above it
_SIGNED = frozenset({DataType.INT16, DataType.INT32})


@dataclass(frozen=True)
class MeterSnapshot:
    """One reading of a meter, in base units. Import energy and total power are always there;
    the rest is None when the model lacks the register or marks the value "not available"."""

    energy_wh: float  # import register, Wh
    power_w: float  # total active power, W (import positive)
    voltage_v: float | None = None  # L1-N (AC) or the DC voltage, V
    current_a: float | None = None  # L1 (AC) or the DC current, A
    energy_export_wh: float | None = None
    power_l1_w: float | None = None
    power_l2_w: float | None = None
    power_l3_w: float | None = None
    voltage_l2_v: float | None = None
    voltage_l3_v: float | None = None
    current_l2_a: float | None = None
    current_l3_a: float | None = None
    frequency_hz: float | None = None
    power_factor: float | None = None  # total, -1..1


SCALED_BY_CT = ("energy_wh", "energy_export_wh", "power_w", "power_l1_w", "power_l2_w", "power_l3_w",
                "current_a", "current_l2_a", "current_l3_a")


def scale_by_ct(snapshot: MeterSnapshot, ratio: float) -> MeterSnapshot:
    """A CT-connected meter's secondary reading -> primary (x ratio); voltages, frequency and
    power factor are not changed by a current transformer. `1 / ratio` goes the other way."""
    if ratio == 1:
        return snapshot
    changes = {name: value * ratio for name in SCALED_BY_CT if (value := getattr(snapshot, name)) is not None}
    return dataclasses.replace(snapshot, **changes)


SNAPSHOT_FIELDS: dict[Quantity, str] = {
    Quantity.ENERGY_IMPORT: "energy_wh",
    Quantity.ENERGY_EXPORT: "energy_export_wh",
    Quantity.POWER: "power_w",
    Quantity.POWER_L1: "power_l1_w",
    Quantity.POWER_L2: "power_l2_w",
    Quantity.POWER_L3: "power_l3_w",
    Quantity.VOLTAGE: "voltage_v",
    Quantity.VOLTAGE_L2: "voltage_l2_v",
    Quantity.VOLTAGE_L3: "voltage_l3_v",
    Quantity.CURRENT: "current_a",
    Quantity.CURRENT_L2: "current_l2_a",
    Quantity.CURRENT_L3: "current_l3_a",
    Quantity.FREQUENCY: "frequency_hz",
    Quantity.POWER_FACTOR: "power_factor",
}


@dataclass(frozen=True)
class RegisterWrite:
    """Words a simulated meter shows at `address` of `table`."""

    table: FunctionCode
    address: int
    words: list[int]


# ---- planning -------------------------------------------------------------------------

def plan_blocks(meter: MeterMap) -> tuple[ReadBlock, ...]:
    """The reads that cover every register of the map (values and exponents), fewest first."""
    return plan_spans(_spans(meter.registers), meter.max_block_registers, meter.max_gap_registers)


def minimal_block_count(meter: MeterMap) -> int:
    """The true minimum number of reads for the map (exhaustive), to check `plan_blocks`."""
    return minimal_span_blocks(_spans(meter.registers), meter.max_block_registers, meter.max_gap_registers)


def _spans(registers: Iterable[MeterRegister]) -> list[ReadBlock]:
    return [span for register in registers for span in register.spans()]


# ---- decoding -------------------------------------------------------------------------

WordsOf = Callable[[ReadBlock], list[int]]


def decode_blocks(meter: MeterMap, blocks: tuple[ReadBlock, ...], words: list[list[int]]) -> MeterSnapshot:
    """Decode the words read for `blocks` (same order). Raises RegisterValueError on words that
    are not a usable reading (wrong length, NaN/infinite, out of range, a required quantity
    marked not available)."""
    words_of = _block_reader(blocks, words)
    values = {register.quantity: decode_register(meter, register, words_of) for register in meter.registers}
    for quantity in REQUIRED:
        if values[quantity] is None:
            raise RegisterValueError(f"{quantity} is marked not available by the meter")
    return MeterSnapshot(**{SNAPSHOT_FIELDS[quantity]: value for quantity, value in values.items()})


def decode_register(meter: MeterMap, register: MeterRegister, words_of: WordsOf) -> float | None:
    """One quantity in its base unit; None if the meter marks it not available."""
    raw = decode(words_of(register.value_span), register.data_type, register.word_order)
    if meter.sentinels and raw == _sentinel(register.data_type):
        return None
    value = raw * register.factor
    exponent_span = register.exponent_span
    if exponent_span is not None:
        exponent = int(decode(words_of(exponent_span), EXPONENT_TYPE))
        if abs(exponent) > MAX_EXPONENT_MAGNITUDE:
            raise RegisterValueError(f"{register.quantity}: exponent {exponent} is out of range")
        value *= 10.0 ** exponent
    _check_range(register.quantity, value)
    return value


def _check_range(quantity: Quantity, value: float) -> None:
    if not math.isfinite(value):
        raise RegisterValueError(f"{quantity} is {value}")
    dimension = DIMENSIONS[quantity]
    if dimension in (Dimension.ENERGY, Dimension.FREQUENCY) and value < 0:
        raise RegisterValueError(f"{quantity} is negative: {value}")
    if dimension is Dimension.RATIO and abs(value) > 1 + POWER_FACTOR_TOLERANCE:
        raise RegisterValueError(f"{quantity} is outside -1..1: {value}")


def _sentinel(data_type: DataType) -> int | None:
    """The "not available" mark: the largest value of an integer type (all 0xFF / 0x7FFF...)."""
    if data_type is DataType.FLOAT32:
        return None
    bits = 16 * data_type.words - (1 if data_type in _SIGNED else 0)
    return (1 << bits) - 1


def _block_reader(blocks: tuple[ReadBlock, ...], words: list[list[int]]) -> WordsOf:
    if len(words) != len(blocks):
        raise RegisterValueError(f"{len(blocks)} blocks planned, {len(words)} answered")
    for block, answer in zip(blocks, words, strict=True):
        if len(answer) != block.count:
            raise RegisterValueError(f"block @{block.address} needs {block.count} words, got {len(answer)}")

    def words_of(span: ReadBlock) -> list[int]:
        for block, answer in zip(blocks, words, strict=True):
            if block.contains(span):
                offset = span.address - block.address
                return answer[offset:offset + span.count]
        raise RegisterValueError(f"no planned block covers FC{int(span.table):02d} @{span.address}")

    return words_of


# ---- encoding (the simulator) -----------------------------------------------------------

def encode_quantities(meter: MeterMap, snapshot: MeterSnapshot) -> list[RegisterWrite]:
    """The words a meter of this model shows for `snapshot`. A value the snapshot lacks is the
    model's "not available" mark if it has one, else zero."""
    writes: list[RegisterWrite] = []
    for register in meter.registers:
        value = getattr(snapshot, SNAPSHOT_FIELDS[register.quantity])
        exponent = 0
        if value is None:
            words = _unavailable_words(meter, register)
        elif register.exponent_address is not None:
            words, exponent = _encode_with_exponent(value, register)
        else:
            words = encode(value / register.factor, register.data_type, register.word_order)
        writes.append(RegisterWrite(register.function_code, register.address, words))
        if register.exponent_address is not None:
            writes.append(RegisterWrite(register.function_code, register.exponent_address,
                                        encode(exponent, EXPONENT_TYPE)))
    return writes


def _unavailable_words(meter: MeterMap, register: MeterRegister) -> list[int]:
    sentinel = _sentinel(register.data_type) if meter.sentinels else None
    if sentinel is None:
        return [0] * register.data_type.words
    return encode(sentinel, register.data_type, register.word_order)


def _encode_with_exponent(value: float, register: MeterRegister) -> tuple[list[int], int]:
    """The smallest exponent (finest resolution) whose mantissa fits the register."""
    for exponent in EXPONENT_RANGE:
        try:
            mantissa = value / (register.factor * 10.0 ** exponent)
            words = encode(mantissa, register.data_type, register.word_order)
        except RegisterValueError:
            continue
        return words, exponent
    raise RegisterValueError(f"{register.quantity}: {value} does not fit {register.data_type} "
                             f"with an exponent in {EXPONENT_RANGE.start}..{EXPONENT_RANGE.stop - 1}")


# ---- identification (hw probe) ----------------------------------------------------------

def probe_blocks(meter: MeterMap) -> tuple[ReadBlock, ...]:
    """The reads that identify the model; empty if the map declares no probe."""
    register = meter.register(meter.probe.quantity) if meter.probe is not None else None
    if register is None:
        return ()
    return plan_spans(register.spans(), meter.max_block_registers, meter.max_gap_registers)


def probe_matches(meter: MeterMap, blocks: tuple[ReadBlock, ...], words: list[list[int]]) -> bool:
    """True if the words read for `probe_blocks(meter)` look like this model's probe value."""
    probe = meter.probe
    register = meter.register(probe.quantity) if probe is not None else None
    if probe is None or register is None:
        return False
    try:
        value = decode_register(meter, register, _block_reader(blocks, words))
    except RegisterValueError:
        return False
    return value is not None and probe.minimum <= value <= probe.maximum


async def identify(hub: ModbusHub, device_id: int, models: Iterable[MeterMap] | None = None) -> list[str]:
    """The models (of `models`, default every known map) whose probe read the device answers
    plausibly. Each distinct read goes on the wire once; a read the device refuses or does not
    answer rules out the models that need it."""
    answers: dict[ReadBlock, list[int] | None] = {}
    matching = []
    for meter in METER_MAPS.values() if models is None else models:
        blocks = probe_blocks(meter)
        for block in blocks:
            if block not in answers:
                answers[block] = await _try_read(hub, device_id, block)
        words = [answer for answer in (answers[block] for block in blocks) if answer is not None]
        if blocks and len(words) == len(blocks) and probe_matches(meter, blocks, words):
            matching.append(meter.model)
    return matching


async def _try_read(hub: ModbusHub, device_id: int, block: ReadBlock) -> list[int] | None:
    try:
        return await hub.read_registers(device_id, block.table, block.address, block.count)
    except DeviceError:
        return None


# ---- the driver -----------------------------------------------------------------------

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

