"""docs/controller-protocol.md on raw words: input registers in, output registers out."""

from __future__ import annotations

import pytest

from workers.drivers.controller import ControllerSnapshot, EvState, decode_inputs, encode_output


@pytest.mark.parametrize(("words", "snapshot"), [
    ([0, 0xFFFF, 0xFFFF, 0, 0], ControllerSnapshot(EvState.A, None, None, 0.0, 0)),
    ([1, 80, 80, 0, 0], ControllerSnapshot(EvState.B, 80.0, 80.0, 0.0, 0)),
    ([2, 35, 90, 1500, 0], ControllerSnapshot(EvState.C, 35.0, 90.0, 150_000.0, 0)),
    ([3, 0xFFFF, 0xFFFF, 0, 4711], ControllerSnapshot(EvState.F, None, None, 0.0, 4711)),
])
def test_input_registers_decode_to_a_snapshot(words, snapshot) -> None:
    assert decode_inputs(words) == snapshot


@pytest.mark.parametrize("words", [
    [4, 0, 0, 0, 0], [2, 101, 80, 0, 0], [2, 50, 0xFFFE, 0, 0], [2, 50, 80, 0],
])
def test_words_outside_the_protocol_are_refused(words) -> None:
    with pytest.raises(ValueError):
        decode_inputs(words)


@pytest.mark.parametrize(("enabled", "limit_w", "words"), [
    (True, 50_000, [1, 500]),
    (True, 7_499.9, [1, 74]),  # never offer more than asked
    (False, 0, [0, 0]),
    (True, float("inf"), [1, 0xFFFF]),
])
def test_output_command_encodes_to_holding_registers(enabled, limit_w, words) -> None:
    assert encode_output(enabled, limit_w) == words


@pytest.mark.parametrize("limit_w", [-1.0, float("nan")])
def test_impossible_power_limits_are_refused(limit_w) -> None:
    with pytest.raises(ValueError):
        encode_output(True, limit_w)
