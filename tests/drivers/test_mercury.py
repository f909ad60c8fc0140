"""Incotex Mercury 230/234: frames against the reference's worked bytes, then the driver
against the byte-level simulator over a real pseudo-terminal, including every bad reply."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.support.waiting import async_wait_until
from workers.common.station_config import ConfigError, MercuryBus, MeterConfig, ModbusTcpBus
from workers.drivers import mercury_frames as frames
from workers.drivers.errors import DeviceError
from workers.drivers.mercury import MercuryLine, MercuryMeter, parse_password
from workers.drivers.meter import MeterDriver, MeterSnapshot
from workers.drivers.meter_factory import open_meter_driver
from workers.drivers.modbus_hub import ModbusHub
from workers.sim.mercury_port import SimulatedMercury

ADDRESS = 17
READING = MeterSnapshot(
    energy_wh=1_234_567.0, power_w=11_040.5, voltage_v=230.12, current_a=16.001,
    energy_export_wh=42.0, power_l1_w=3680.17, power_l2_w=3680.17, power_l3_w=-3680.16,
    voltage_l2_v=229.98, voltage_l3_v=231.0, current_l2_a=15.5, current_l3_a=0.0)


# ---- frames ---------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "frame"), [
    pytest.param("00 00", "00 00 01 B0", id="test-channel"),
    pytest.param("00 01 01 01 01 01 01 01 01", "00 01 01 01 01 01 01 01 01 77 81", id="open-level-1"),
    pytest.param("00 08 16 11", "00 08 16 11 4F 8A", id="read-voltages"),
    pytest.param("01 04 00 00 00 02", "01 04 00 00 00 02 71 CB", id="modbus-sdm630-read-v"),
])
def test_frames_carry_the_crc16_modbus_of_the_worked_examples(body: str, frame: str) -> None:
    raw = bytes.fromhex(body)
    assert frames.frame(raw[0], raw[1:]) == bytes.fromhex(frame)
    assert frames.crc_ok(bytes.fromhex(frame))


def test_requests_are_built_as_documented() -> None:
    assert frames.open_request(0, frames.AccessLevel.USER, bytes([1] * 6)).hex(" ") == \
        "00 01 01 01 01 01 01 01 01 77 81"
    assert frames.parameter_request(0, frames.Bwri.VOLTAGE) == bytes.fromhex("00 08 16 11 4F 8A")
    assert frames.energy_request(5)[:4] == bytes.fromhex("05 05 00 00")


@pytest.mark.parametrize(("raw", "signed", "value"), [
    ("00 D6 59", False, 0x59D6),  # 229.98 V
    ("80 10 27", True, -10_000),  # bit 7: reverse active power, -100.00 W
    ("C1 02 03", False, 0x010302),  # bits 7 and 6 are flags, never value
])
def test_three_byte_values_decode_in_incotex_byte_order(raw: str, signed: bool, value: int) -> None:
    assert frames.decode_three(bytes.fromhex(raw), signed=signed) == value


def test_energy_counters_decode_in_incotex_byte_order_and_round_trip() -> None:
    assert frames.decode_four(bytes.fromhex("12 00 87 D6")) == 0x0012D687  # 1234.567 kWh
    for value in (0, 1, 1_234_567, frames.FOUR_BYTE_MAX):
        assert frames.decode_four(frames.encode_four(value)) == value
    for value in (0, -1, 4_194_303, -4_194_303):
        assert frames.decode_three(frames.encode_three(value), signed=True) == value
    with pytest.raises(ValueError, match="does not fit"):
        frames.encode_three(frames.THREE_BYTE_MAX + 1)


GOOD = frames.frame(ADDRESS, bytes(9))


@pytest.mark.parametrize(("raw", "message"), [
    pytest.param(b"", "no answer", id="silence"),
    pytest.param(GOOD[:-1] + bytes([GOOD[-1] ^ 1]), "CRC error in a 12-byte reply", id="crc"),
    pytest.param(frames.frame(ADDRESS + 1, bytes(9)), f"answered by address {ADDRESS + 1}, not {ADDRESS}",
                 id="wrong-address"),
    pytest.param(GOOD[:7], "incomplete reply: 7 of 12 bytes", id="partial"),
    pytest.param(bytes([0xFE, 0x13, 0x37]), "garbage on the line: 3 bytes", id="garbage"),
])
def test_bad_replies_are_refused_with_the_reason(raw: bytes, message: str) -> None:
    with pytest.raises(frames.FrameError, match=message):
        frames.parse_reply(raw, ADDRESS, 9)


def test_a_status_frame_is_recognised_in_place_of_data_and_address_zero_takes_any_meter() -> None:
    closed = frames.parse_reply(frames.frame(ADDRESS, b"\x05"), ADDRESS, 9)
    assert closed.status == frames.Status.CHANNEL_CLOSED
    assert frames.parse_reply(GOOD, 0, 9).data == bytes(9)


@pytest.mark.parametrize(("text", "password"), [
    (None, bytes([1] * 6)), ("111111", bytes([1] * 6)), ("123456", bytes([1, 2, 3, 4, 5, 6])),
    ("0A0B0C0D0E0F", bytes.fromhex("0A0B0C0D0E0F")),
])
def test_passwords_are_digits_or_hex(text: str | None, password: bytes) -> None:
    assert parse_password(text) == password


@pytest.mark.parametrize("text", ["11111", "ZZZZZZZZZZZZ", "1111111"])
def test_a_malformed_password_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="6 digits or 12 hex digits"):
        parse_password(text)


# ---- driver against the simulator over a pty ------------------------------------------------

@pytest.fixture
async def simulator(tmp_path: Path) -> AsyncIterator[SimulatedMercury]:
    meter = SimulatedMercury("meter1", tmp_path / "ttyMERCURY", ADDRESS, password=bytes([1, 2, 3, 4, 5, 6]))
    meter.open()
    meter.set_reading(READING)
    try:
        yield meter
    finally:
        meter.close()


@pytest.fixture
async def line(simulator: SimulatedMercury) -> AsyncIterator[MercuryLine]:
    mercury_line = MercuryLine("mercury", str(simulator.link), baudrate=9600, timeout_s=0.15)
    try:
        yield mercury_line
    finally:
        mercury_line.close()


@pytest.fixture
def meter(line: MercuryLine) -> MercuryMeter:
    return MercuryMeter(line, ADDRESS, password=parse_password("123456"))


def assert_reading(snapshot: MeterSnapshot) -> None:
    for field in READING.__dataclass_fields__:
        assert getattr(snapshot, field) == pytest.approx(getattr(READING, field), abs=0.0051), field


async def test_the_driver_opens_the_channel_and_reads_every_value(meter: MercuryMeter,
                                                                  simulator: SimulatedMercury) -> None:
    assert_reading(await meter.poll())
    assert_reading(await meter.poll())
    assert simulator.opens == 1, "the channel stays open between polls"


async def test_an_expired_channel_is_opened_again(meter: MercuryMeter, simulator: SimulatedMercury) -> None:
    simulator.channel_timeout_s = 0.2
    await meter.poll()
    await async_wait_until(lambda: _closed(simulator), timeout_s=2, what="the channel to expire")
    assert_reading(await meter.poll())
    assert simulator.opens == 2


async def _closed(simulator: SimulatedMercury) -> bool:
    return not simulator.channel_open


async def test_a_wrong_password_is_a_device_error(line: MercuryLine, simulator: SimulatedMercury) -> None:
    with pytest.raises(DeviceError, match=r"mercury/17: opening the channel .* refused.*wrong password"):
        await MercuryMeter(line, ADDRESS).poll()
    assert simulator.opens == 0


@pytest.mark.parametrize(("fault", "message"), [
    ("crc", "CRC error in a 12-byte reply"),
    ("wrong_device", f"answered by address {ADDRESS + 1}, not {ADDRESS}"),
    ("garbage", "garbage on the line: 5 bytes"),
    ("partial_frame", "incomplete reply: 6 of 12 bytes"),
])
async def test_each_bad_reply_is_a_device_error_and_the_meter_recovers(
        meter: MercuryMeter, simulator: SimulatedMercury, fault: str, message: str) -> None:
    await meter.poll()  # channel open: the next exchange is the voltage read (12-byte reply)
    simulator.inject_fault(fault)
    with pytest.raises(DeviceError, match=message):
        await meter.poll()
    simulator.clear_faults()
    assert_reading(await meter.poll())


async def test_a_silent_meter_times_out(meter: MercuryMeter, simulator: SimulatedMercury) -> None:
    simulator.set_online(False)
    with pytest.raises(DeviceError, match="mercury/17: no answer within 150 ms"):
        await meter.poll()
    simulator.set_online(True)
    assert_reading(await meter.poll())


async def test_another_meters_address_gets_no_answer(line: MercuryLine) -> None:
    with pytest.raises(DeviceError, match="mercury/18: no answer"):
        await MercuryMeter(line, ADDRESS + 1).poll()


async def test_a_missing_port_is_a_device_error(tmp_path: Path) -> None:
    meter = MercuryMeter(MercuryLine("mercury", str(tmp_path / "ttyNOPE")), ADDRESS)
    with pytest.raises(DeviceError, match=r"cannot open serial port .*ttyNOPE"):
        await meter.poll()


async def test_the_simulator_refuses_values_mercury_cannot_show(simulator: SimulatedMercury) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        simulator.set_reading(MeterSnapshot(energy_wh=0.0, power_w=50_000.0))


def test_the_simulator_is_a_simulated_device_with_its_fault_kinds(tmp_path: Path) -> None:
    meter = SimulatedMercury("meter3", tmp_path / "tty", 3)
    assert meter.fault_kinds == ("crc", "wrong_device", "garbage", "partial_frame")
    with pytest.raises(ValueError, match="meter3 has no fault 'smoke'"):
        meter.inject_fault("smoke")


# ---- configuration and the factory ----------------------------------------------------------

def test_a_mercury_bus_needs_a_timeout_of_at_least_150_ms() -> None:
    bus = MercuryBus.model_validate({"kind": "mercury", "port": "/dev/ttyUSB1"})
    assert (bus.baudrate, bus.timeout_s) == (9600, 0.15)
    with pytest.raises(ValidationError, match="timeout_s"):
        MercuryBus.model_validate({"kind": "mercury", "port": "/dev/ttyUSB1", "timeout_s": 0.1})
    with pytest.raises(ValidationError, match="password"):
        MeterConfig(bus="m", device_id=1, model="mercury230", password="12345")


async def test_the_factory_gives_each_model_its_driver_and_shares_a_line(tmp_path: Path) -> None:
    mercury = MercuryBus(kind="mercury", port=str(tmp_path / "ttyM"))
    tcp = ModbusTcpBus(kind="modbus_tcp", host="127.0.0.1", port=1502)
    lines: dict[str, MercuryLine] = {}
    first = open_meter_driver(MeterConfig(bus="m", device_id=1, model="mercury230", password="111111"),
                              mercury, {}, lines)
    second = open_meter_driver(MeterConfig(bus="m", device_id=2, model="mercury234"), mercury, {}, lines)
    assert isinstance(first, MercuryMeter) and isinstance(second, MercuryMeter)
    assert first.line is second.line is lines["m"]
    hub = ModbusHub("t", tcp)
    try:
        modbus = open_meter_driver(MeterConfig(bus="t", device_id=1, model="sdm630"), tcp, {"t": hub})
        assert isinstance(modbus, MeterDriver)
    finally:
        await hub.close()


@pytest.mark.parametrize(("model", "bus_kind", "password", "message"), [
    ("mercury230", "tcp", None, "must be kind = \"mercury\""),
    ("sdm630", "mercury", None, "its meters are mercury230 or mercury234"),
    ("sdm630", "tcp", "111111", "password applies to Mercury meters only"),
    ("sdm999", "tcp", None, "no register map for meter model 'sdm999'"),
])
async def test_a_model_on_the_wrong_bus_is_a_config_error(tmp_path: Path, model: str, bus_kind: str,
                                                          password: str | None, message: str) -> None:
    tcp = ModbusTcpBus(kind="modbus_tcp", host="127.0.0.1", port=1502)
    bus = MercuryBus(kind="mercury", port=str(tmp_path / "ttyM")) if bus_kind == "mercury" else tcp
    hub = ModbusHub("b", tcp)
    try:
        with pytest.raises(ConfigError, match=message):
            open_meter_driver(MeterConfig(bus="b", device_id=1, model=model, password=password), bus,
                              {"b": hub})
    finally:
        await hub.close()
