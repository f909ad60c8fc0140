"""Infypower V1.13 frames: worked ids and payloads (hardware.md §3.2), every kind of bad input,
and the `[power_modules]` settings the driver is built from."""

from __future__ import annotations

import math
import struct

import pytest
from pydantic import ValidationError

from bus import Bus
from workers.common.device_status import DeviceStatusPublisher
from workers.common.station_config import PowerModulesConfig
from workers.drivers.can_link import CanSettings
from workers.drivers.infypower import InfypowerModules, Setpoint
from workers.drivers.infypower_frames import (
    Capabilities,
    Command,
    DeviceNo,
    ErrorCode,
    FrameId,
    Output,
    ProtocolError,
    StatusFlag,
    alarms,
    decode_capabilities,
    decode_module_count,
    decode_on_off,
    decode_output,
    decode_set_output,
    decode_status,
    encode_capabilities,
    encode_module_count,
    encode_on_off,
    encode_output,
    encode_set_output,
    encode_status,
    fault_text,
    request_payload,
)


@pytest.mark.parametrize(("frame_id", "wire"), [
    # error 0 | device 0x0A << 22 | command << 16 | destination << 8 | source
    (FrameId(Command.READ_OUTPUT, destination=0x01, source=0xF0), 0x0283_01F0),
    (FrameId(Command.SET_OUTPUT, destination=0x02, source=0xF0), 0x029C_02F0),
    (FrameId(Command.ON_OFF, destination=0x03, source=0xF0), 0x029A_03F0),
    (FrameId(Command.STATUS, destination=0x00, source=0xF0), 0x0284_00F0),
    (FrameId(Command.CAPABILITIES, destination=0x01, source=0xF0), 0x028A_01F0),
    (FrameId(Command.MODULE_COUNT, destination=0x3F, source=0xF0, device=DeviceNo.GROUP), 0x02C2_3FF0),
    # the answer of module 1 to a read, and the same answer refusing it with DATA_INVALID (0b011)
    (FrameId(Command.READ_OUTPUT, destination=0xF0, source=0x01), 0x0283_F001),
    (FrameId(Command.READ_OUTPUT, destination=0xF0, source=0x01, error=ErrorCode.DATA_INVALID), 0x0E83_F001),
])
def test_frame_ids_match_the_worked_bits(frame_id: FrameId, wire: int) -> None:
    assert frame_id.encode() == wire
    assert FrameId.decode(wire) == frame_id


def test_an_answer_swaps_destination_and_source() -> None:
    request = FrameId(Command.STATUS, destination=0x05, source=0xF0)
    assert request.answer() == FrameId(Command.STATUS, destination=0xF0, source=0x05)
    assert request.answer(ErrorCode.COMMAND_INVALID).encode() >> 26 == 0x02


def test_set_output_is_millivolts_and_milliamps_big_endian() -> None:
    payload = encode_set_output(400_000, 50_000)
    assert payload == bytes.fromhex("00061A80 0000C350")
    assert decode_set_output(payload) == (400_000, 50_000)


def test_on_is_zero_and_off_is_one_in_byte_0() -> None:
    assert encode_on_off(True) == bytes(8)
    assert encode_on_off(False) == bytes.fromhex("0100000000000000")
    assert decode_on_off(bytes(8)) is True
    assert decode_on_off(bytes.fromhex("0100000000000000")) is False


def test_output_readback_is_two_big_endian_floats() -> None:
    payload = bytes.fromhex("43C80000 42480000")  # 400.0 V, 50.0 A
    assert decode_output(payload) == Output(400.0, 50.0)
    assert encode_output(Output(400.0, 50.0)) == payload


def test_capabilities_are_volts_tenths_of_amps_and_tens_of_watts() -> None:
    payload = bytes.fromhex("03E8 0096 03E8 0BB8")  # 1000 V, 150 V, 100.0 A, 30 kW
    caps = decode_capabilities(payload)
    assert caps == Capabilities(1000.0, 150.0, 100.0, 30_000.0)
    assert encode_capabilities(caps) == payload


def test_status_bytes_5_to_7_map_to_typed_flags() -> None:
    # byte 5 bit 5 = input under-voltage; byte 6 bits 0 and 4 = DC side off, over-temperature;
    # byte 7 bit 4 = sleeping
    payload = bytes.fromhex("0000000000 20 11 10")
    status = decode_status(payload)
    assert status == (StatusFlag.INPUT_UNDER_VOLTAGE | StatusFlag.DC_SIDE_OFF
                      | StatusFlag.OVER_TEMPERATURE | StatusFlag.SLEEPING)
    assert encode_status(status) == payload
    assert alarms(status) == StatusFlag.OVER_TEMPERATURE | StatusFlag.INPUT_UNDER_VOLTAGE
    assert fault_text(status) == "over_temperature,input_under_voltage"


def test_operating_states_are_not_faults() -> None:
    running = StatusFlag.WALK_IN | StatusFlag.POWER_LIMIT | StatusFlag.DC_SIDE_OFF
    assert fault_text(running) is None
    assert fault_text(StatusFlag(0)) is None


def test_reserved_status_bits_are_dropped() -> None:
    assert decode_status(bytes.fromhex("FFFFFFFFFF 00 00 0E")) == StatusFlag(0)


def test_module_count_is_byte_2() -> None:
    assert decode_module_count(bytes.fromhex("0000030000000000")) == 3
    assert encode_module_count(3) == bytes.fromhex("0000030000000000")
    assert request_payload() == bytes(8)


@pytest.mark.parametrize("payload", [b"", bytes(7), bytes(9)])
@pytest.mark.parametrize("decode", [decode_output, decode_status, decode_capabilities, decode_on_off,
                                    decode_set_output, decode_module_count])
def test_a_payload_that_is_not_8_bytes_is_refused(decode: object, payload: bytes) -> None:
    with pytest.raises(ProtocolError, match="8 bytes"):
        decode(payload)  # type: ignore[operator]


@pytest.mark.parametrize("voltage", [math.nan, math.inf, -1.0])
def test_implausible_readback_is_refused(voltage: float) -> None:
    with pytest.raises(ProtocolError, match="implausible output voltage"):
        decode_output(struct.pack(">ff", voltage, 1.0))


def test_bad_values_are_refused_with_a_reason() -> None:
    with pytest.raises(ProtocolError, match="on/off byte"):
        decode_on_off(bytes.fromhex("0200000000000000"))
    with pytest.raises(ProtocolError, match="voltage_mv"):
        encode_set_output(-1, 0)
    with pytest.raises(ProtocolError, match="current_ma"):
        encode_set_output(0, 2**32)
    with pytest.raises(ProtocolError, match="Vmin"):
        decode_capabilities(bytes.fromhex("0096 03E8 03E8 0BB8"))
    with pytest.raises(ProtocolError, match="16-bit"):
        encode_capabilities(Capabilities(70_000.0, 0.0, 1.0, 1.0))
    with pytest.raises(ProtocolError, match="one byte"):
        encode_module_count(256)


def test_ids_that_do_not_fit_are_refused() -> None:
    with pytest.raises(ProtocolError, match="29-bit"):
        FrameId.decode(0x2000_0000)
    with pytest.raises(ProtocolError, match="device number"):
        FrameId.decode(0x0083_01F0)  # device 0x02
    with pytest.raises(ProtocolError, match="command"):
        FrameId(0x40, destination=1, source=0xF0).encode()
    with pytest.raises(ProtocolError, match="destination"):
        FrameId(Command.STATUS, destination=0x100, source=0xF0).encode()


# --- station.toml [power_modules] -----------------------------------------------------------

def modules_config(**fields: object) -> PowerModulesConfig:
    return PowerModulesConfig.model_validate({"channel": "/dev/ttyACM0", **fields})


def test_modules_are_given_by_addresses_or_by_count() -> None:
    assert modules_config(addresses=[3, 7]).module_addresses() == (3, 7)
    assert modules_config(count=3).module_addresses() == (0, 1, 2)
    config = modules_config(count=2)
    assert (config.controller_address, config.bitrate, config.silence_timeout_s) == (0xF0, 125_000, 10.0)


@pytest.mark.parametrize(("fields", "message"), [
    ({}, "addresses or count, exactly one"),
    ({"count": 2, "addresses": [1, 2]}, "addresses or count, exactly one"),
    ({"addresses": [1, 1]}, "must be distinct"),
    ({"addresses": [0xF0]}, "differ from the controller address"),
    ({"count": 2, "resend_s": 5.0}, "well under silence_timeout_s"),
    ({"count": 2, "bitrate": 115_200}, "bitrate"),
    ({"count": 2, "min_voltage_v": 1000.0}, "min_voltage_v must be below"),
    ({"count": 2, "interface": "socketcan"}, "interface"),
])
def test_bad_power_module_settings_say_what_is_wrong(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        modules_config(**fields)


async def test_the_driver_is_built_from_station_toml(bus: Bus) -> None:
    config = modules_config(addresses=[4, 9], poll_s=0.5, resend_s=2.0, open_delay_s=0.0, bitrate=250_000)
    driver = InfypowerModules.from_config(config, DeviceStatusPublisher(bus))
    assert driver.names == {4: "pm1", 9: "pm2"}
    assert (driver.poll_s, driver.resend_s, driver.controller_address) == (0.5, 2.0, 0xF0)
    assert driver.link.settings == CanSettings("/dev/ttyACM0", "slcan", 250_000, 0.0)
    assert driver.setpoint(9) == Setpoint(on=False, voltage_mv=0, current_ma=0)  # safe until told
