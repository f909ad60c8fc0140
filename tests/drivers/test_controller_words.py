"""The station controller protocol v1/v2 (docs/controller-protocol.md) on raw words."""

from __future__ import annotations

import pytest

from bus.enums import Standard
from workers.drivers.controllers.interface import (
    ControllerError,
    ControllerSnapshot,
    EvDemand,
    EvState,
    OutputLimits,
    OutputMeasurement,
    SessionPhase,
)
from workers.drivers.controllers.station_dc import (
    decode_identity,
    decode_inputs,
    decode_output,
    encode_identity,
    encode_inputs,
    encode_limits,
    encode_output,
)

U = 0xFFFF
IDLE = [0, U, U, 0, 0, 0, 0, 0, U, U, U, U, U, U]
CCS_CHARGING = [2, 35, 80, 1500, 0, 1, 6, 0, 3712, 2440, 4100, 2439, 3710, 1355]
CHADEMO_INSULATION_FAULT = [3, 20, 80, 0, 2, 2, 11, 2, U, U, 4100, 2439, 0, 0]
TYPE2_PAUSED = [1, U, U, 0, 0, 4, 7, 0, U, U, U, 320, 2300, 0]


@pytest.mark.parametrize(("words", "snapshot"), [
    (IDLE, ControllerSnapshot(EvState.A, None, None, 0.0, 0)),
    (CCS_CHARGING, ControllerSnapshot(
        EvState.C, 35.0, 80.0, 150_000.0, 0, phase=SessionPhase.CHARGING, standard=Standard.CCS,
        demand=EvDemand(target_voltage_v=371.2, target_current_a=244.0, max_voltage_v=410.0,
                        max_current_a=243.9),
        present=OutputMeasurement(voltage_v=371.0, current_a=135.5))),
    (CHADEMO_INSULATION_FAULT, ControllerSnapshot(
        EvState.F, 20.0, 80.0, 0.0, 2, phase=SessionPhase.FAULT, standard=Standard.CHADEMO,
        demand=EvDemand(max_voltage_v=410.0, max_current_a=243.9),
        present=OutputMeasurement(0.0, 0.0), errors=ControllerError.INSULATION)),
    (TYPE2_PAUSED, ControllerSnapshot(
        EvState.B, None, None, 0.0, 0, phase=SessionPhase.PAUSED_BY_EV, standard=Standard.TYPE2,
        demand=EvDemand(max_current_a=32.0), present=OutputMeasurement(230.0, 0.0))),
])
def test_input_registers_decode_to_a_snapshot_and_back(words, snapshot) -> None:
    assert decode_inputs(words) == snapshot
    assert encode_inputs(snapshot) == words


def test_v0_addresses_keep_their_meaning() -> None:
    """ev_state, soc, target soc, EV max power (100 W) and vendor error code stay at 0..4."""
    snapshot = decode_inputs([2, 42, 80, 500, 7, *IDLE[5:]])
    assert (snapshot.ev_state, snapshot.soc, snapshot.target_soc) == (EvState.C, 42.0, 80.0)
    assert (snapshot.ev_max_power_w, snapshot.error_code) == (50_000.0, 7)
    assert encode_output(True, 22_050.0) == [1, 220]


def test_error_flags_are_bits() -> None:
    flags = decode_inputs([3, *IDLE[1:7], 0b1000_0000_0000_0101, *IDLE[8:]]).errors
    expected = ControllerError.EV_COMMUNICATION | ControllerError.OVERTEMPERATURE | ControllerError.INTERNAL
    assert flags == expected


@pytest.mark.parametrize(("words", "problem"), [
    ([4, *IDLE[1:]], "ev_state 4"),
    ([2, 101, *IDLE[2:]], "soc_pct 101"),
    ([2, 50, 0xFFFE, *IDLE[3:]], "target_soc_pct 65534"),
    ([*IDLE[:5], 5, *IDLE[6:]], "standard 5"),
    ([*IDLE[:6], 12, *IDLE[7:]], "phase 12"),
    (IDLE[:5], "expected 14"),
])
def test_words_outside_the_protocol_are_refused(words, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_inputs(words)


@pytest.mark.parametrize(("enabled", "limit_w", "words"), [
    (True, 50_000, [1, 500]),
    (True, 7_499.9, [1, 74]),  # never offer more than asked
    (False, 0, [0, 0]),
    (True, float("inf"), [1, 0xFFFF]),
])
def test_output_command_encodes_to_holding_registers(enabled, limit_w, words) -> None:
    assert encode_output(enabled, limit_w) == words


def test_limits_round_down_and_none_means_no_limit() -> None:
    limits = OutputLimits(power_w=60_050.0, current_a=125.07, voltage_v=500.0)
    assert encode_limits(limits) == [600, 1250, 5000]
    assert encode_limits(OutputLimits()) == [U, U, U]
    assert decode_output([1, 600, 1250, U]) == (True, OutputLimits(60_000.0, 125.0, None))


@pytest.mark.parametrize("limit_w", [-1.0, float("nan")])
def test_impossible_power_limits_are_refused(limit_w) -> None:
    with pytest.raises(ValueError):
        encode_output(True, limit_w)
    with pytest.raises(ValueError):
        OutputLimits(power_w=limit_w)


def test_enable_other_than_0_or_1_is_refused() -> None:
    with pytest.raises(ValueError, match="enable 2"):
        decode_output([2, 0, U, U])


def test_identity_block_carries_protocol_firmware_and_mode() -> None:
    words = encode_identity((1, 4, 2), in_bootloader=False)
    assert words == [2, 1, 4, 2, 0]  # version 2: version 1 and the lease
    identity = decode_identity(words)
    assert (identity.protocol_version, identity.firmware_version) == (2, "1.4.2")
    assert not identity.in_bootloader
    assert decode_identity([1, 1, 4, 2, 1]).in_bootloader
    with pytest.raises(ValueError, match="mode 7"):
        decode_identity([1, 1, 4, 2, 7])
