"""Accuenergy AcuDC 243 (AcuDC 240 series): DC meter, Modbus RTU.

Holding registers (FC03), high word first (reference/hardware.md §1.4, Accuenergy's
AcuDC 240 Modbus map): voltage and current float32 in V and A, power float32 in kW,
import energy uint32 in 0.01 kWh. The live values (0x0200) and the energy counters
(0x0300) are far apart, so they are read in two blocks.
"""

from workers.drivers.meter_maps.schema import MeterMap, MeterRegister, Quantity
from workers.drivers.registers import DataType, FunctionCode, WordOrder

_FC03 = FunctionCode.READ_HOLDING_REGISTERS
_ABCD = WordOrder.HIGH_FIRST

METER_MAP = MeterMap(
    model="acudc243",
    description="Accuenergy AcuDC 243 DC meter",
    registers=(
        MeterRegister(Quantity.VOLTAGE, _FC03, 0x0200, DataType.FLOAT32, _ABCD, 1.0, "V"),
        MeterRegister(Quantity.CURRENT, _FC03, 0x0202, DataType.FLOAT32, _ABCD, 1.0, "A"),
        MeterRegister(Quantity.POWER, _FC03, 0x0204, DataType.FLOAT32, _ABCD, 1.0, "kW"),
        MeterRegister(Quantity.ENERGY_IMPORT, _FC03, 0x0300, DataType.UINT32, _ABCD, 0.01, "kWh"),
    ),
    max_block_registers=100,
    max_gap_registers=16,
)
