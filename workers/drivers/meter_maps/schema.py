"""What a meter register map is made of: frozen descriptions, one per quantity (STYLE habit 6).

A map is data: which table (function code), address, type, word order, scale and unit
each quantity has on one meter model. One generic decoder (workers.drivers.meter) reads
every map; adding a model means adding a table, not code. A map that cannot work (a unit
that does not fit its quantity, a value longer than the meter's longest read) fails at
import, so a typo never reaches a station.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from workers.drivers.registers import DataType, FunctionCode, WordOrder


class Quantity(StrEnum):
    """What a register measures; the decoder's snapshot field for each is in `BASE_UNITS`."""

    ENERGY_IMPORT = "energy_import"
    POWER = "power"
    VOLTAGE = "voltage"
    CURRENT = "current"


BASE_UNITS: dict[Quantity, str] = {
    Quantity.ENERGY_IMPORT: "Wh",
    Quantity.POWER: "W",
    Quantity.VOLTAGE: "V",
    Quantity.CURRENT: "A",
}

# unit a meter reports in -> (quantity it can measure, factor to the base unit)
UNITS: dict[str, tuple[Quantity, float]] = {
    "Wh": (Quantity.ENERGY_IMPORT, 1.0),
    "kWh": (Quantity.ENERGY_IMPORT, 1000.0),
    "W": (Quantity.POWER, 1.0),
    "kW": (Quantity.POWER, 1000.0),
    "V": (Quantity.VOLTAGE, 1.0),
    "A": (Quantity.CURRENT, 1.0),
}

REQUIRED = (Quantity.ENERGY_IMPORT, Quantity.POWER)


@dataclass(frozen=True)
class MeterRegister:
    """One quantity on one meter model: register value x `scale` = value in `unit`."""

    quantity: Quantity
    table: FunctionCode
    address: int  # 0-based protocol address (manual's 30001 -> FC04 address 0)
    data_type: DataType
    word_order: WordOrder
    scale: float
    unit: str

    def __post_init__(self) -> None:
        if self.unit not in UNITS or UNITS[self.unit][0] is not self.quantity:
            raise ValueError(f"{self.quantity}: unit {self.unit!r} does not measure it")
        if self.table not in (FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS):
            raise ValueError(f"{self.quantity}: meters are read from FC03 or FC04, not {self.table!r}")
        if not 0 <= self.address <= 0xFFFF - self.data_type.words + 1 or self.scale == 0:
            raise ValueError(f"{self.quantity}: bad address {self.address} or scale {self.scale}")

    @property
    def factor(self) -> float:
        """Register value x factor = value in the base unit (Wh, W, V, A)."""
        return self.scale * UNITS[self.unit][1]


@dataclass(frozen=True)
class MeterMap:
    """A meter model: its registers and how it may be read in blocks.

    `max_block_registers`: the longest read the meter answers. `max_gap_registers`: how many
    unused registers one block may span between two quantities (the meter answers them; the
    simulator serves them as zeros), trading a few wasted words for fewer requests.
    """

    model: str
    description: str
    registers: tuple[MeterRegister, ...]
    max_block_registers: int
    max_gap_registers: int

    def __post_init__(self) -> None:
        quantities = [register.quantity for register in self.registers]
        if len(set(quantities)) != len(quantities):
            raise ValueError(f"{self.model}: a quantity is mapped twice: {quantities}")
        missing = [q for q in REQUIRED if q not in quantities]
        if missing:
            raise ValueError(f"{self.model}: required quantities missing: {missing}")
        too_long = [r.quantity for r in self.registers if r.data_type.words > self.max_block_registers]
        if too_long or not 1 <= self.max_block_registers <= 125 or self.max_gap_registers < 0:
            raise ValueError(f"{self.model}: bad block limits for {too_long or 'the map'}")

    def register(self, quantity: Quantity) -> MeterRegister | None:
        for register in self.registers:
            if register.quantity is quantity:
                return register
        return None
