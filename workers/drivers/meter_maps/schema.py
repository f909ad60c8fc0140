"""What a meter register map is, and how one is read from its TOML file (STYLE habit 6).

A map is data: for each quantity a meter model offers, the table (function code), address,
type, word order, scale and unit of its register. One generic decoder (workers.drivers.meter)
reads every map, so adding a model means adding a file, not code. A map that cannot work (a
unit that does not fit its quantity, overlapping registers, a value longer than the meter's
longest read, a typo in a key) fails when it is loaded, with the file and the field named,
so a mistake never reaches a poll. The file format is described in README.md beside this file.
"""

from __future__ import annotations

import math
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workers.drivers.meter_maps.blocks import ReadBlock
from workers.drivers.registers import DataType, FunctionCode, WordOrder

MAX_READ_REGISTERS = 125  # Modbus limit per read request (Application Protocol §6.3)
MODEL_NAME_PATTERN = r"^[a-z0-9_]+$"


class MeterMapError(ValueError):
    """A register map file cannot be used; the message names the file and the field."""


class Quantity(StrEnum):
    """What a register measures. `voltage` and `current` are phase L1 on an AC meter and the
    bus values on a DC meter; `power` is the total active power (import positive)."""

    ENERGY_IMPORT = "energy_import"
    ENERGY_EXPORT = "energy_export"
    POWER = "power"
    POWER_L1 = "power_l1"
    POWER_L2 = "power_l2"
    POWER_L3 = "power_l3"
    VOLTAGE = "voltage"
    VOLTAGE_L2 = "voltage_l2"
    VOLTAGE_L3 = "voltage_l3"
    CURRENT = "current"
    CURRENT_L2 = "current_l2"
    CURRENT_L3 = "current_l3"
    FREQUENCY = "frequency"
    POWER_FACTOR = "power_factor"


class Dimension(StrEnum):
    ENERGY = "energy"
    POWER = "power"
    VOLTAGE = "voltage"
    CURRENT = "current"
    FREQUENCY = "frequency"
    RATIO = "ratio"


DIMENSIONS: dict[Quantity, Dimension] = {
    Quantity.ENERGY_IMPORT: Dimension.ENERGY,
    Quantity.ENERGY_EXPORT: Dimension.ENERGY,
    Quantity.POWER: Dimension.POWER,
    Quantity.POWER_L1: Dimension.POWER,
    Quantity.POWER_L2: Dimension.POWER,
    Quantity.POWER_L3: Dimension.POWER,
    Quantity.VOLTAGE: Dimension.VOLTAGE,
    Quantity.VOLTAGE_L2: Dimension.VOLTAGE,
    Quantity.VOLTAGE_L3: Dimension.VOLTAGE,
    Quantity.CURRENT: Dimension.CURRENT,
    Quantity.CURRENT_L2: Dimension.CURRENT,
    Quantity.CURRENT_L3: Dimension.CURRENT,
    Quantity.FREQUENCY: Dimension.FREQUENCY,
    Quantity.POWER_FACTOR: Dimension.RATIO,
}

# unit a meter reports in -> (what it measures, factor to the base unit: Wh, W, V, A, Hz, 1)
UNITS: dict[str, tuple[Dimension, float]] = {
    "Wh": (Dimension.ENERGY, 1.0),
    "kWh": (Dimension.ENERGY, 1000.0),
    "W": (Dimension.POWER, 1.0),
    "kW": (Dimension.POWER, 1000.0),
    "V": (Dimension.VOLTAGE, 1.0),
    "A": (Dimension.CURRENT, 1.0),
    "Hz": (Dimension.FREQUENCY, 1.0),
    "1": (Dimension.RATIO, 1.0),
}

REQUIRED = (Quantity.ENERGY_IMPORT, Quantity.POWER)  # without these a reading is unusable
_REGISTER_TABLES = (FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS)
_ADDRESS_SPACE = 0x10000


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MeterRegister(_Frozen):
    """One quantity on one meter model: register value x `scale` = value in `unit`.

    With `exponent_address`, the meter sends a decimal exponent in a separate int16 register
    of the same table and the value is register x `scale` x 10^exponent (Acrel DJSF1352-RN:
    scale 0.001 gives its raw x 10^(exp-3)).
    """

    quantity: Quantity
    function_code: FunctionCode
    address: int = Field(ge=0, lt=_ADDRESS_SPACE, description="0-based: manual's 30001 = FC04 @0")
    data_type: DataType
    word_order: WordOrder = WordOrder.HIGH_FIRST
    scale: float = 1.0
    unit: str
    exponent_address: int | None = Field(default=None, ge=0, lt=_ADDRESS_SPACE)

    @field_validator("function_code")
    @classmethod
    def _register_table(cls, code: FunctionCode) -> FunctionCode:
        if code not in _REGISTER_TABLES:
            raise ValueError(f"meters are read from FC03 or FC04, not FC{int(code):02d}")
        return code

    @field_validator("scale")
    @classmethod
    def _usable_scale(cls, scale: float) -> float:
        if scale == 0 or not math.isfinite(scale):
            raise ValueError(f"scale must be a finite non-zero number, got {scale}")
        return scale

    @model_validator(mode="after")
    def _consistent(self) -> MeterRegister:
        if self.unit not in UNITS or UNITS[self.unit][0] is not DIMENSIONS[self.quantity]:
            known = ", ".join(u for u, (d, _) in UNITS.items() if d is DIMENSIONS[self.quantity])
            raise ValueError(f"{self.quantity}: unit {self.unit!r} does not measure it (use {known})")
        if self.address + self.data_type.words > _ADDRESS_SPACE:
            raise ValueError(f"{self.quantity}: {self.data_type} at {self.address} runs past 0xFFFF")
        exponent = self.exponent_span
        if exponent is not None and self.value_span.contains(exponent):
            raise ValueError(f"{self.quantity}: exponent register {self.exponent_address} "
                             "is inside the value")
        return self

    @property
    def factor(self) -> float:
        """Register value x factor = value in the base unit (Wh, W, V, A, Hz, 1)."""
        return self.scale * UNITS[self.unit][1]

    @property
    def value_span(self) -> ReadBlock:
        return ReadBlock(self.function_code, self.address, self.data_type.words)

    @property
    def exponent_span(self) -> ReadBlock | None:
        if self.exponent_address is None:
            return None
        return ReadBlock(self.function_code, self.exponent_address, 1)

    def spans(self) -> tuple[ReadBlock, ...]:
        """The registers that must be read to decode this quantity."""
        exponent = self.exponent_span
        return (self.value_span,) if exponent is None else (self.value_span, exponent)


class Probe(_Frozen):
    """How `hw probe` recognises the model: read `quantity`; it lies in [minimum, maximum]
    (base unit) on a meter of this model, and almost never on another model's registers."""

    quantity: Quantity
    minimum: float
    maximum: float

    @model_validator(mode="after")
    def _ordered(self) -> Probe:
        if not self.minimum < self.maximum:
            raise ValueError(f"probe range is empty: {self.minimum} .. {self.maximum}")
        return self


class MeterMap(_Frozen):
    """A meter model: its registers, how it may be read in blocks, how it is recognised.

    `sentinels`: the meter marks a value it does not have with the largest number of the type
    (all 0xFF unsigned, 0x7FFF... signed; ABB). Such a value is None for an optional quantity
    and makes the reading unusable for a required one.
    """

    model: str = Field(pattern=MODEL_NAME_PATTERN)
    description: str
    registers: tuple[MeterRegister, ...]
    max_block_registers: int = Field(ge=1, le=MAX_READ_REGISTERS)
    max_gap_registers: int = Field(ge=0)
    sentinels: bool = False
    probe: Probe | None = None

    @model_validator(mode="after")
    def _complete(self) -> MeterMap:
        quantities = [register.quantity for register in self.registers]
        if len(set(quantities)) != len(quantities):
            raise ValueError(f"a quantity is mapped twice: {[str(q) for q in quantities]}")
        missing = [str(q) for q in REQUIRED if q not in quantities]
        if missing:
            raise ValueError(f"required quantities missing: {missing}")
        too_long = [str(r.quantity) for r in self.registers if r.data_type.words > self.max_block_registers]
        if too_long:
            raise ValueError(f"longer than max_block_registers: {too_long}")
        _check_no_overlap(self.registers)
        if self.probe is not None and self.probe.quantity not in quantities:
            raise ValueError(f"probe quantity {self.probe.quantity} is not mapped")
        return self

    def register(self, quantity: Quantity) -> MeterRegister | None:
        for register in self.registers:
            if register.quantity is quantity:
                return register
        return None


def _check_no_overlap(registers: tuple[MeterRegister, ...]) -> None:
    """Two values never share a register (an exponent register may serve several values)."""
    owner: dict[tuple[FunctionCode, int], Quantity] = {}
    for register in registers:
        span = register.value_span
        for address in range(span.address, span.end):
            other = owner.setdefault((span.table, address), register.quantity)
            if other is not register.quantity:
                raise ValueError(f"{other} and {register.quantity} overlap at "
                                 f"FC{int(span.table):02d} @{address}")
    for register in registers:
        span = register.exponent_span
        if span is not None and (span.table, span.address) in owner:
            raise ValueError(f"{register.quantity}: exponent register {span.address} holds "
                             f"{owner[(span.table, span.address)]}")


# ---- the TOML file ---------------------------------------------------------------------

_DEFAULT_KEYS = frozenset({"function_code", "data_type", "word_order", "scale", "unit"})


def load_map_file(path: Path) -> MeterMap:
    """Read and check one map file; the model name is the file name without `.toml`."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise MeterMapError(f"{path}: cannot read: {error.strerror}") from error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise MeterMapError(f"{path}: invalid TOML: {error}") from error
    data, quantity_names = _map_data(path, raw)
    try:
        return MeterMap.model_validate(data)
    except ValidationError as error:
        raise MeterMapError(f"{path}: {_describe(error, quantity_names)}") from error


def _map_data(path: Path, raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """File layout -> MeterMap fields: `[defaults]` fill each row of `[quantities]`."""
    if "model" in raw:
        raise MeterMapError(f"{path}: model: remove it; the model name is the file name ({path.stem!r})")
    data = dict(raw)
    defaults = data.pop("defaults", {})
    quantities = data.pop("quantities", None)
    if not isinstance(defaults, dict) or set(defaults) - _DEFAULT_KEYS:
        raise MeterMapError(f"{path}: defaults: only {sorted(_DEFAULT_KEYS)} may have defaults")
    if not isinstance(quantities, dict) or not quantities:
        raise MeterMapError(f"{path}: quantities: missing (a table of quantity = {{ address = ... }})")
    rows = []
    for name, row in quantities.items():
        if not isinstance(row, dict):
            raise MeterMapError(f"{path}: quantities.{name}: expected a table like {{ address = 0x0000 }}")
        rows.append({**defaults, **row, "quantity": name})
    return {**data, "model": path.stem, "registers": rows}, list(quantities)


def _describe(error: ValidationError, quantity_names: list[str]) -> str:
    """Pydantic's locations in the file's own terms: registers[3] -> quantities.<name>."""
    parts = []
    for problem in error.errors():
        location = list(problem["loc"])
        if location[:1] == ["registers"] and len(location) > 1 and isinstance(location[1], int):
            location[:2] = ["quantities", quantity_names[location[1]]]
        where = ".".join(str(item) for item in location) or "(file)"
        parts.append(f"{where}: {problem['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)
