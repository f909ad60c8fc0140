"""The generic meter decoder on raw register words: maps in, typed snapshots out."""

from __future__ import annotations

import pytest

from workers.drivers.meter import (
    MeterSnapshot,
    ReadBlock,
    decode_blocks,
    encode_quantities,
    plan_blocks,
)
from workers.drivers.meter_maps import (
    METER_MAPS,
    MeterMap,
    MeterRegister,
    Quantity,
    UnknownMeterModel,
    meter_map,
)
from workers.drivers.registers import DataType, FunctionCode, RegisterValueError, WordOrder

FC03, FC04 = FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS
F32, ABCD = DataType.FLOAT32, WordOrder.HIGH_FIRST


def sdm630_block(voltage=(0x4366, 0x199A), current=(0x4180, 0), power=(0x462C, 0x8000),
                 energy=(0x449A, 0x5000)) -> list[int]:
    """FC04 words 0x00..0x4B of an SDM630: 230.1 V, 16 A, 11040 W, 1234.5 kWh (the rest 0)."""
    words = [0] * 0x4C
    words[0x00:0x02], words[0x06:0x08] = voltage, current
    words[0x34:0x36], words[0x48:0x4A] = power, energy
    return words


ACUDC_LIVE = [0x43C8, 0, 0x42FB, 0, 0x4248, 0xCCCD]  # 400 V, 125.5 A, 50.2 kW
ACUDC_ENERGY = [0x0001, 0xE240, 0, 0]  # import 123456 x 0.01 kWh, export 0


@pytest.mark.parametrize(("model", "blocks", "words", "expected"), [
    pytest.param("sdm630", (ReadBlock(FC04, 0x00, 0x4C),), [sdm630_block()],
                 MeterSnapshot(1_234_500.0, 11_040.0, 230.1, 16.0), id="sdm630-one-block"),
    pytest.param("acudc243", (ReadBlock(FC03, 0x200, 6), ReadBlock(FC03, 0x300, 4)),
                 [ACUDC_LIVE, ACUDC_ENERGY],
                 MeterSnapshot(1_234_560.0, 50_200.0, 400.0, 125.5), id="acudc243-kw-and-hundredths"),
])
def test_meter_words_decode_to_a_snapshot_in_base_units(model, blocks, words, expected) -> None:
    meter = meter_map(model)
    assert plan_blocks(meter) == blocks
    snapshot = decode_blocks(meter, blocks, words)
    for field in ("energy_wh", "power_w", "voltage_v", "current_a"):
        assert getattr(snapshot, field) == pytest.approx(getattr(expected, field), rel=1e-6), field


@pytest.mark.parametrize("model", sorted(METER_MAPS))
def test_every_shipped_map_round_trips_a_reading(model) -> None:
    meter = meter_map(model)
    blocks = plan_blocks(meter)
    reading = MeterSnapshot(energy_wh=98_765.4, power_w=7_400.0, voltage_v=231.0, current_a=10.5)
    words = [[0] * block.count for block in blocks]
    for write in encode_quantities(meter, reading):
        span = ReadBlock(write.table, write.address, len(write.words))
        index, block = next((i, b) for i, b in enumerate(blocks) if b.contains(span))
        offset = write.address - block.address
        words[index][offset:offset + len(write.words)] = write.words
    decoded = decode_blocks(meter, blocks, words)
    energy_step_wh = meter.register(Quantity.ENERGY_IMPORT).factor  # e.g. acudc: 10 Wh steps
    assert decoded.energy_wh == pytest.approx(reading.energy_wh, abs=energy_step_wh)
    assert decoded.power_w == pytest.approx(reading.power_w, rel=1e-6)


def _map(*registers: MeterRegister, max_block: int = 125, max_gap: int = 10) -> MeterMap:
    return MeterMap(model="test", description="test meter", registers=registers,
                    max_block_registers=max_block, max_gap_registers=max_gap)


def _reg(quantity: Quantity, address: int, table: FunctionCode = FC04,
         unit: str | None = None) -> MeterRegister:
    units = {Quantity.ENERGY_IMPORT: "kWh", Quantity.POWER: "W", Quantity.VOLTAGE: "V", Quantity.CURRENT: "A"}
    return MeterRegister(quantity=quantity, function_code=table, address=address, data_type=F32,
                         word_order=ABCD, scale=1.0, unit=unit or units[quantity])


@pytest.mark.parametrize(("registers", "limits", "blocks"), [
    pytest.param((_reg(Quantity.ENERGY_IMPORT, 0), _reg(Quantity.POWER, 2)), {},
                 (ReadBlock(FC04, 0, 4),), id="adjacent-registers-share-a-block"),
    pytest.param((_reg(Quantity.POWER, 40), _reg(Quantity.ENERGY_IMPORT, 0)), {"max_gap": 10},
                 (ReadBlock(FC04, 0, 2), ReadBlock(FC04, 40, 2)), id="a-wide-gap-splits"),
    pytest.param((_reg(Quantity.POWER, 40), _reg(Quantity.ENERGY_IMPORT, 0)), {"max_gap": 38},
                 (ReadBlock(FC04, 0, 42),), id="a-gap-within-the-limit-is-read-through"),
    pytest.param((_reg(Quantity.ENERGY_IMPORT, 0), _reg(Quantity.POWER, 8), _reg(Quantity.VOLTAGE, 16)),
                 {"max_block": 10},
                 (ReadBlock(FC04, 0, 10), ReadBlock(FC04, 16, 2)), id="block-length-limit"),
    pytest.param((_reg(Quantity.ENERGY_IMPORT, 0), _reg(Quantity.POWER, 2, FC03)), {},
                 (ReadBlock(FC03, 2, 2), ReadBlock(FC04, 0, 2)), id="tables-never-mix"),
])
def test_registers_group_into_the_fewest_allowed_blocks(registers, limits, blocks) -> None:
    assert plan_blocks(_map(*registers, **limits)) == blocks


@pytest.mark.parametrize(("patch", "why"), [
    ({"energy": (0x7FC0, 0)}, "nan"),
    ({"power": (0x7F80, 0)}, "inf"),
    ({"energy": (0xC3FA, 0)}, "negative"),
])
def test_unusable_words_are_refused_not_published(patch, why) -> None:
    meter = meter_map("sdm630")
    with pytest.raises(RegisterValueError, match=why):
        decode_blocks(meter, plan_blocks(meter), [sdm630_block(**patch)])


def test_short_answer_is_refused() -> None:
    meter = meter_map("sdm630")
    with pytest.raises(RegisterValueError):
        decode_blocks(meter, plan_blocks(meter), [sdm630_block()[:-2]])


@pytest.mark.parametrize(("build", "message"), [
    (lambda: _reg(Quantity.POWER, 0, unit="kWh"), "does not measure"),
    (lambda: _reg(Quantity.POWER, 0, FunctionCode.READ_COILS), "FC03 or FC04"),
    (lambda: _map(_reg(Quantity.POWER, 0)), "required quantities missing"),
    (lambda: _map(_reg(Quantity.POWER, 0), _reg(Quantity.ENERGY_IMPORT, 2), _reg(Quantity.POWER, 4)),
     "mapped twice"),
])
def test_a_broken_map_fails_when_it_is_written(build, message) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(UnknownMeterModel, match="abb_b23, abb_b24, acudc243, djsf1352_rn"):
        meter_map("landis_gyr_e350")
