"""Eastron SDM630 (also SDM72DM-V2): three-phase AC meter, Modbus RTU.

Input registers (FC04), IEEE-754 float32 high word first, units V, A, W, kWh
(reference/hardware.md §1.1; volkszaehler/mbmd meters/rs485/sdm.go). Eastron answers
up to 40 parameters (80 registers) per request, so all four quantities come in one read.
"""

from workers.drivers.meter_maps.schema import MeterMap, MeterRegister, Quantity
from workers.drivers.registers import DataType, FunctionCode, WordOrder

_FC04 = FunctionCode.READ_INPUT_REGISTERS
_F32 = DataType.FLOAT32
_ABCD = WordOrder.HIGH_FIRST

METER_MAP = MeterMap(
    model="sdm630",
    description="Eastron SDM630 three-phase AC meter",
    registers=(
        MeterRegister(Quantity.VOLTAGE, _FC04, 0x0000, _F32, _ABCD, 1.0, "V"),  # 30001 V L1-N
        MeterRegister(Quantity.CURRENT, _FC04, 0x0006, _F32, _ABCD, 1.0, "A"),  # 30007 A L1
        MeterRegister(Quantity.POWER, _FC04, 0x0034, _F32, _ABCD, 1.0, "W"),  # 30053 total W
        MeterRegister(Quantity.ENERGY_IMPORT, _FC04, 0x0048, _F32, _ABCD, 1.0, "kWh"),  # 30073
    ),
    max_block_registers=80,
    max_gap_registers=80,
)
