"""Modbus register words <-> numbers: the vocabulary device register maps are written in.

Pure functions on lists of 16-bit words, so they are tested on raw words without a bus
(STYLE habit 15) and shared by the drivers (decode) and the simulator (encode).
Conventions (reference/hardware.md §0): each word is big-endian on the wire; a 32/64-bit
value is high word first ("ABCD", Eastron, Accuenergy) or low word first ("CDAB").
"""

from __future__ import annotations

import math
import struct
from enum import IntEnum, StrEnum


class FunctionCode(IntEnum):
    """Modbus read function codes; each names the table a value lives in."""

    READ_COILS = 1
    READ_DISCRETE_INPUTS = 2
    READ_HOLDING_REGISTERS = 3
    READ_INPUT_REGISTERS = 4


class DataType(StrEnum):
    """How a value is laid out in registers; the value is the name used in register maps."""

    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    INT32 = "int32"
    UINT64 = "uint64"
    FLOAT32 = "float32"

    @property
    def words(self) -> int:
        """Number of 16-bit registers the value occupies."""
        return _LAYOUT[self][1]

    @property
    def is_integer(self) -> bool:
        return self is not DataType.FLOAT32


class WordOrder(StrEnum):
    """Order of the 16-bit words of a multi-word value (bytes inside a word are always big-endian)."""

    HIGH_FIRST = "ABCD"
    LOW_FIRST = "CDAB"


_LAYOUT: dict[DataType, tuple[str, int]] = {
    DataType.UINT16: ("H", 1),
    DataType.INT16: ("h", 1),
    DataType.UINT32: ("I", 2),
    DataType.INT32: ("i", 2),
    DataType.UINT64: ("Q", 4),
    DataType.FLOAT32: ("f", 2),
}


class RegisterValueError(ValueError):
    """Words that do not form a value of the declared type, or a value that does not fit it."""


def decode(words: list[int], data_type: DataType, order: WordOrder = WordOrder.HIGH_FIRST) -> float:
    """Turn `data_type.words` registers into a number."""
    if len(words) != data_type.words:
        raise RegisterValueError(f"{data_type} needs {data_type.words} registers, got {len(words)}")
    if any(not 0 <= word <= 0xFFFF for word in words):
        raise RegisterValueError(f"register words must be 0..65535, got {words}")
    ordered = list(reversed(words)) if order is WordOrder.LOW_FIRST else list(words)
    raw = struct.pack(f">{len(ordered)}H", *ordered)
    return struct.unpack(f">{_LAYOUT[data_type][0]}", raw)[0]


def encode(value: float, data_type: DataType, order: WordOrder = WordOrder.HIGH_FIRST) -> list[int]:
    """Turn a number into registers; integer types round, and refuse values out of range."""
    if not math.isfinite(value):
        raise RegisterValueError(f"cannot encode {value} as {data_type}")
    number: float | int = round(value) if data_type.is_integer else value
    try:
        raw = struct.pack(f">{_LAYOUT[data_type][0]}", number)
    except struct.error as error:
        raise RegisterValueError(f"{value} does not fit {data_type}: {error}") from error
    words = list(struct.unpack(f">{data_type.words}H", raw))
    return list(reversed(words)) if order is WordOrder.LOW_FIRST else words
