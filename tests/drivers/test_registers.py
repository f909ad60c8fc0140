"""Register words <-> numbers, on raw words as they appear on the wire."""

from __future__ import annotations

import math

import pytest

from workers.drivers.registers import DataType, RegisterValueError, WordOrder, decode, encode

ABCD, CDAB = WordOrder.HIGH_FIRST, WordOrder.LOW_FIRST


@pytest.mark.parametrize(("words", "data_type", "order", "value"), [
    ([0x4366, 0x199A], DataType.FLOAT32, ABCD, 230.1),  # Eastron's voltage example
    ([0x199A, 0x4366], DataType.FLOAT32, CDAB, 230.1),
    ([0x0001, 0xE240], DataType.UINT32, ABCD, 123_456),
    ([0xE240, 0x0001], DataType.UINT32, CDAB, 123_456),
    ([0xFFFF, 0xFE0C], DataType.INT32, ABCD, -500),
    ([0xFFFF], DataType.INT16, ABCD, -1),
    ([0xFFFF], DataType.UINT16, ABCD, 65_535),
    ([0, 0, 0x0001, 0x0000], DataType.UINT64, ABCD, 65_536),
])
def test_words_decode_to_the_documented_value(words, data_type, order, value) -> None:
    assert decode(words, data_type, order) == pytest.approx(value, rel=1e-6)
    assert decode(encode(value, data_type, order), data_type, order) == pytest.approx(value, rel=1e-6)


def test_nan_words_decode_to_nan_for_the_caller_to_refuse() -> None:
    assert math.isnan(decode([0x7FC0, 0x0000], DataType.FLOAT32))


@pytest.mark.parametrize(("words", "data_type"), [
    ([1], DataType.FLOAT32),
    ([1, 2, 3], DataType.UINT32),
    ([70_000, 0], DataType.UINT32),
    ([-1], DataType.UINT16),
])
def test_wrong_word_count_or_out_of_range_word_is_refused(words, data_type) -> None:
    with pytest.raises(RegisterValueError):
        decode(words, data_type)


@pytest.mark.parametrize(("value", "data_type"), [
    (-1, DataType.UINT32), (70_000, DataType.UINT16), (float("nan"), DataType.FLOAT32),
    (float("inf"), DataType.UINT32),
])
def test_values_that_do_not_fit_are_refused(value, data_type) -> None:
    with pytest.raises(RegisterValueError):
        encode(value, data_type)


def test_integer_types_round_to_the_nearest_count() -> None:
    assert encode(1234.56, DataType.UINT32) == [0, 1235]
