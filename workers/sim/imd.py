"""The simulated insulation monitor: a Bender isoCHA425HV on Modbus (reference/hardware.md §2.4).

Holding registers 1000..1031 are eight 4-register channels in the device's format (decoded by
workers/drivers/imd.py): R_F at 1000, U_n at 1008, the rest healthy zeros. R_F reads a healthy
HEALTHY_OHM until the fault `insulation` drops it to FAULT_OHM with the device's alarm set; the
alarm relay (`alarm_active`) is what the IO module's `imd_alarm` input shows. Writing 0x5445
to 8005 runs a self-test for `self_test_s` (R_F invalid meanwhile, the test bits set); with the
fault `self_test_fail` it ends in a device error that stays until the faults are cleared.
U_n stays 0 V: the model has no DC link voltage of its own.
"""

from __future__ import annotations

import asyncio

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from workers.common.station_config import ImdConfig
from workers.drivers import imd, registers
from workers.drivers.registers import FunctionCode
from workers.sim import devices
from workers.sim.faults import FaultState, HasFaults

HEALTHY_OHM = 5_000_000.0
FAULT_OHM = 50_000.0
SELF_TEST_S = 1.0
CHANNELS = 8
DESCRIPTION_R_F = 71  # "insulation fault R_F" (EVerest's channel-description table)
DESCRIPTION_U_N = 76  # "voltage"
_ALARM_CODE = {imd.Alarm.NONE: 0, imd.Alarm.DEVICE_ERROR: 2, imd.Alarm.ALARM: 5}
_TEST_EXTERNAL = 2
_VALIDITY_INVALID = 3
_READS = frozenset({3})
_WRITES = frozenset({6, 16})


def channel_words(value: float, *, unit: int, description: int, alarm: imd.Alarm = imd.Alarm.NONE,
                  testing: bool = False, invalid: bool = False) -> list[int]:
    """One channel as the device sends it (the inverse of `imd.decode_channel`)."""
    status = _ALARM_CODE[alarm] | (_TEST_EXTERNAL << 6 if testing else 0)
    unit_byte = unit | (_VALIDITY_INVALID << 6 if invalid else 0)
    return [*registers.encode(value, registers.DataType.FLOAT32), status << 8 | unit_byte, description]


class SimImd(HasFaults):
    name = "imd"

    def __init__(self, config: ImdConfig, *, self_test_s: float = SELF_TEST_S) -> None:
        self.config = config
        self._faults = FaultState(self.name, ("insulation", "self_test_fail"))
        self._self_test_s = self_test_s
        self._test_ends_at: float | None = None
        self._test_failed = False
        self._server: ModbusTcpServer | None = None

    # ---- SimulatedDevice (HasFaults) -------------------------------------------------

    def clear_faults(self) -> None:
        super().clear_faults()
        self._test_failed = False

    # ---- the world -------------------------------------------------------------------

    @property
    def alarm_active(self) -> bool:
        """The alarm relay: insulation below the device's alarm setting."""
        return self._faults.has("insulation")

    def device(self) -> SimDevice:
        channels = CHANNELS * imd.CHANNEL_WORDS
        holding = [SimData(imd.R_F_REGISTER, count=channels, values=0, datatype=DataType.REGISTERS),
                   SimData(imd.SELF_TEST_REGISTER, count=1, values=0, datatype=DataType.REGISTERS)]
        return SimDevice(self.config.device_id, (
            [SimData(0, values=[False] * devices.BITS_PER_WORD, datatype=DataType.BITS)],
            [SimData(0, values=[False] * devices.BITS_PER_WORD, datatype=DataType.BITS)],
            holding, [SimData(0, count=1, datatype=DataType.INVALID)],
        ), action=self._host_access)

    async def attach(self, server: ModbusTcpServer) -> None:
        self._server = server
        await self.tick()

    def detach(self) -> None:
        self._server = None

    async def tick(self) -> None:
        """Finish a self-test that has run its time, then show the state in the registers."""
        if self._server is None:
            return
        now = asyncio.get_running_loop().time()
        if self._test_ends_at is not None and now >= self._test_ends_at:
            self._test_ends_at = None
            self._test_failed = self._faults.has("self_test_fail")
        await self._server.async_setValues(self.config.device_id, FunctionCode.READ_HOLDING_REGISTERS,
                                           imd.R_F_REGISTER, self.channel_registers())

    def channel_registers(self) -> list[int]:
        """Registers from 1000, CHANNELS channels."""
        testing = self._test_ends_at is not None
        if self._test_failed:
            alarm = imd.Alarm.DEVICE_ERROR
        else:
            alarm = imd.Alarm.ALARM if self.alarm_active else imd.Alarm.NONE
        resistance = FAULT_OHM if self.alarm_active else HEALTHY_OHM
        words = channel_words(resistance, unit=imd.UNIT_OHM, description=DESCRIPTION_R_F, alarm=alarm,
                              testing=testing, invalid=testing)
        words += [0] * imd.CHANNEL_WORDS
        words += channel_words(0.0, unit=imd.UNIT_VOLT, description=DESCRIPTION_U_N)
        return words + [0] * (CHANNELS * imd.CHANNEL_WORDS - len(words))

    async def _host_access(self, function_code: int, _start: int, address: int, _count: int,
                           _registers: list[int], values: list[int] | list[bool] | None) -> ExcCodes | None:
        if function_code in _READS and values is not None:
            return None  # the simulator writing its own registers
        if not self._faults.online:
            return ExcCodes.GATEWAY_NO_RESPONSE
        if function_code in _READS:
            return None
        if function_code not in _WRITES:
            return ExcCodes.ILLEGAL_FUNCTION
        if address != imd.SELF_TEST_REGISTER or list(values or []) != [imd.SELF_TEST_COMMAND]:
            return ExcCodes.ILLEGAL_VALUE if address == imd.SELF_TEST_REGISTER else ExcCodes.ILLEGAL_ADDRESS
        self._test_ends_at = asyncio.get_running_loop().time() + self._self_test_s
        self._test_failed = False
        return None
