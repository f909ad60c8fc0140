"""Bender isoCHA425HV: register words in, snapshot out (channel format, alarm threshold, invalid
values, wrong data), then the driver against a real pymodbus server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from workers.common.redis_server import free_port
from workers.common.station_config import ModbusTcpBus
from workers.drivers.errors import DeviceError
from workers.drivers.imd import (
    Alarm,
    Imd,
    ImdChannel,
    ImdTest,
    SelfTestResult,
    Validity,
    decode_channel,
    snapshot_from_words,
)
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import RegisterValueError
from workers.sim.devices import absent_devices

IMD = 3
R_F_OK = [0x4A98, 0x9680, 0x0002, 71]  # 5 MOhm, no alarm, unit Ohm, exact
U_N_400 = [0x43C8, 0x0000, 0x0004, 76]  # 400 V
UNUSED = [0, 0, 0, 0]  # the channel at 1004


def words(r_f: list[int], u_n: list[int] = U_N_400) -> list[int]:
    return [*r_f, *UNUSED, *u_n]


@pytest.mark.parametrize(("channel", "value", "alarm", "test", "unit", "validity"), [
    ([0x4A98, 0x9680, 0x0002, 71], 5e6, Alarm.NONE, ImdTest.NONE, 2, Validity.EXACT),
    ([0x4743, 0x5000, 0x0502, 71], 50_000.0, Alarm.ALARM, ImdTest.NONE, 2, Validity.EXACT),
    ([0x4743, 0x5000, 0x0102, 1], 50_000.0, Alarm.PRE_WARNING, ImdTest.NONE, 2, Validity.EXACT),
    ([0, 0, 0x0202, 129], 0.0, Alarm.DEVICE_ERROR, ImdTest.NONE, 2, Validity.EXACT),
    ([0, 0, 0x8242, 71], 0.0, Alarm.RESERVED, ImdTest.EXTERNAL, 2, Validity.TRUE_VALUE_SMALLER),
    ([0x4B18, 0x9680, 0x4082, 71], 1e7, Alarm.NONE, ImdTest.INTERNAL, 2, Validity.TRUE_VALUE_BIGGER),
    ([0x43C8, 0, 0x04C4, 76], 400.0, Alarm.WARNING, ImdTest.NONE, 4, Validity.INVALID),
])
def test_a_channel_decodes_value_alarm_test_unit_and_validity(
        channel: list[int], value: float, alarm: Alarm, test: ImdTest, unit: int, validity: Validity) -> None:
    assert decode_channel(channel) == ImdChannel(value, alarm, test, unit, validity, channel[3])


@pytest.mark.parametrize(("r_f", "threshold_ohm", "resistance", "fault"), [
    (R_F_OK, 100_000, 5e6, False),
    ([0x47C3, 0x4F80, 0x0002, 71], 100_000, 99_999.0, True),  # just below the threshold
    ([0x47C3, 0x5000, 0x0002, 71], 100_000, 100_000.0, False),  # at the threshold: still fine
    ([0x43C8, 0x0000, 0x0002, 71], 500, 400.0, True),  # a stricter threshold (kOhm from station.toml)
    ([0x4A98, 0x9680, 0x0502, 71], 100_000, 5e6, True),  # the device's own alarm
    ([0x47C3, 0x4F80, 0x0082, 71], 100_000, 99_999.0, False),  # "the true value is bigger"
    ([0x47C3, 0x4F80, 0x0042, 71], 100_000, 99_999.0, True),  # "the true value is smaller"
])
def test_the_snapshot_reports_an_insulation_fault_below_the_threshold(
        r_f: list[int], threshold_ohm: float, resistance: float, fault: bool) -> None:
    snapshot = snapshot_from_words(words(r_f), threshold_ohm)
    assert (snapshot.resistance_ohm, snapshot.insulation_fault) == (resistance, fault)
    assert snapshot.voltage_v == 400.0


def test_a_value_the_device_marks_invalid_is_none_never_a_number() -> None:
    snapshot = snapshot_from_words(words([0, 0, 0x80C2, 71], [0x43C8, 0, 0x00C4, 76]), 100_000)
    assert (snapshot.resistance_ohm, snapshot.voltage_v) == (None, None)
    assert snapshot.self_test is ImdTest.EXTERNAL
    assert not snapshot.insulation_fault and not snapshot.device_error


def test_a_device_error_is_reported() -> None:
    snapshot = snapshot_from_words(words([0, 0, 0x0202, 129]), 100_000)
    assert snapshot.device_error and snapshot.alarm is Alarm.DEVICE_ERROR


@pytest.mark.parametrize(("data", "message"), [
    (words([0x4A98, 0x9680, 0x0004, 71]), "R_F channel has unit code 4, expected 2"),
    (words(R_F_OK, [0x43C8, 0, 0x0002, 76]), "U_n channel has unit code 2, expected 4"),
    (words([0x7FC0, 0x0000, 0x0002, 71]), "not a measurement"),  # NaN
    (words([0xBF80, 0x0000, 0x0002, 71]), "not a measurement"),  # -1 Ohm
    (words(R_F_OK)[:11], "expected 12 registers"),
    ([70_000, *words(R_F_OK)[1:]], "0..65535"),
])
def test_words_no_real_device_sends_are_refused(data: list[int], message: str) -> None:
    with pytest.raises(RegisterValueError, match=message):
        snapshot_from_words(data, 100_000)


class ImdServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[ModbusPDU] = []
        holding = [SimData(1000, count=32, values=0, datatype=DataType.REGISTERS),
                   SimData(8005, count=1, values=0, datatype=DataType.REGISTERS)]
        bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
        none = [SimData(0, count=1, datatype=DataType.INVALID)]
        self.server = ModbusTcpServer([absent_devices(), SimDevice(IMD, (bits, bits, holding, none))],
                                      address=("127.0.0.1", self.port), trace_pdu=self._trace)

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests.append(pdu)
        return pdu


@pytest.fixture
async def imd_server() -> AsyncIterator[ImdServer]:
    server = ImdServer()
    await server.server.serve_forever(background=True)
    try:
        yield server
    finally:
        await server.server.shutdown()


@pytest.fixture
async def hub(imd_server: ImdServer) -> AsyncIterator[ModbusHub]:
    modbus_hub = ModbusHub("imdbus", ModbusTcpBus(kind="modbus_tcp", host="127.0.0.1", port=imd_server.port,
                                                 timeout_s=0.5))
    try:
        yield modbus_hub
    finally:
        await modbus_hub.close()


async def test_the_driver_reads_r_f_and_u_n_in_one_request(hub: ModbusHub, imd_server: ImdServer) -> None:
    await imd_server.server.async_setValues(IMD, 3, 1000, words([0x4743, 0x5000, 0x0502, 71]))
    snapshot = await Imd(hub, IMD).poll()
    assert [(pdu.function_code, pdu.address, pdu.count) for pdu in imd_server.requests] == [(3, 1000, 12)]
    assert (snapshot.resistance_ohm, snapshot.voltage_v, snapshot.insulation_fault) == (50_000.0, 400.0, True)


async def test_bad_data_from_the_device_is_a_device_error(hub: ModbusHub, imd_server: ImdServer) -> None:
    await imd_server.server.async_setValues(IMD, 3, 1000, words([0x4A98, 0x9680, 0x0004, 71]))
    with pytest.raises(DeviceError, match="imdbus/3: bad IMD data: R_F channel has unit code 4"):
        await Imd(hub, IMD).poll()


async def test_a_missing_device_is_a_device_error(hub: ModbusHub) -> None:
    with pytest.raises(DeviceError, match="imdbus/4"):
        await Imd(hub, 4).poll()


async def test_the_self_test_is_started_by_writing_te_to_8005(hub: ModbusHub, imd_server: ImdServer) -> None:
    await Imd(hub, IMD).start_self_test()
    assert await imd_server.server.async_getValues(IMD, 3, 8005, 1) == [0x5445]


async def test_a_self_test_the_device_never_runs_times_out(hub: ModbusHub, imd_server: ImdServer) -> None:
    await imd_server.server.async_setValues(IMD, 3, 1000, words(R_F_OK))
    result = await Imd(hub, IMD).run_self_test(timeout_s=0.3, poll_s=0.05)
    assert result is SelfTestResult.TIMED_OUT
