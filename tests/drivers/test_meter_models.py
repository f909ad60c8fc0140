"""Every shipped meter model: raw register words in -> reading out, block plans, map files.

Words are literal register contents as the meters send them (float32 ABCD from Eastron and
AcuDC, scaled integers from ABB, INT32 low word first from Carlo Gavazzi, value + exponent
registers from Acrel); figures follow reference/hardware.md §0-§1 and its pymodbus examples
(230.1 V = float32 [0x4366, 0x199A] = EM340 INT32 LSW-first [2301, 0]).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.server import ModbusTcpServer

from workers.common.redis_server import free_port
from workers.common.station_config import ModbusTcpBus
from workers.drivers.meter import (
    SNAPSHOT_FIELDS,
    MeterDriver,
    MeterSnapshot,
    ReadBlock,
    decode_blocks,
    encode_quantities,
    identify,
    minimal_block_count,
    plan_blocks,
)
from workers.drivers.meter_maps import (
    MAPS_DIR_ENV,
    METER_MAPS,
    SHIPPED_MAPS_DIR,
    MeterMapError,
    load_meter_maps,
    map_folders,
    meter_map,
)
from workers.drivers.meter_maps.blocks import minimal_span_blocks, plan_spans
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import FunctionCode, RegisterValueError
from workers.sim.devices import absent_devices, meter_device

FC03, FC04 = FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS
REPO = Path(__file__).resolve().parents[2]

EASTRON_3P = {  # FC04 address -> float32 words
    0x00: [0x4366, 0x199A], 0x02: [0x4366, 0x0000], 0x04: [0x4365, 0x8000],  # 230.1, 230.0, 229.5 V
    0x06: [0x4180, 0x0000], 0x08: [0x4178, 0x0000], 0x0A: [0x4148, 0x0000],  # 16, 15.5, 12.5 A
    0x0C: [0x4566, 0x0000], 0x0E: [0x4566, 0x0000], 0x10: [0x4566, 0x0000],  # 3680 W each
    0x34: [0x462C, 0x8000], 0x3E: [0x3F7A, 0xE148], 0x46: [0x4248, 0x0000],  # 11040 W, PF 0.98, 50 Hz
    0x48: [0x449A, 0x5000], 0x4A: [0x4148, 0x0000],  # import 1234.5 kWh, export 12.5 kWh
}
EASTRON_3P_READING = dict(
    voltage_v=230.1, voltage_l2_v=230.0, voltage_l3_v=229.5, current_a=16.0, current_l2_a=15.5,
    current_l3_a=12.5, power_l1_w=3680.0, power_l2_w=3680.0, power_l3_w=3680.0, power_w=11_040.0,
    power_factor=0.98, frequency_hz=50.0, energy_wh=1_234_500.0, energy_export_wh=12_500.0)

CASES = {
    "sdm630": (FC04, EASTRON_3P, EASTRON_3P_READING),
    "sdm72dm_v2": (FC04, EASTRON_3P, EASTRON_3P_READING),
    "sdm72d_m": (FC04, {0x34: [0x462C, 0x8000], 0x48: [0x449A, 0x5000], 0x4A: [0x4148, 0]},
                 dict(power_w=11_040.0, energy_wh=1_234_500.0, energy_export_wh=12_500.0, voltage_v=None)),
    "sdm120": (FC04, {0x00: [0x4366, 0x199A], 0x06: [0x4180, 0], 0x0C: [0x4566, 0], 0x1E: [0xBF00, 0],
                      0x46: [0x4248, 0], 0x48: [0x449A, 0x5000], 0x4A: [0, 0]},
               dict(voltage_v=230.1, current_a=16.0, power_w=3680.0, power_factor=-0.5, frequency_hz=50.0,
                    energy_wh=1_234_500.0, energy_export_wh=0.0, voltage_l2_v=None)),
    "abb_b23": (FC03, {  # uint32 V/10, A/100, int32 W/100, uint64 kWh/100; L3 "not available"
        0x5000: [0, 0, 0x0001, 0xE23A], 0x5004: [0, 0, 0, 0x0064],  # 1234.50 kWh, 1.00 kWh
        0x5B00: [0, 2301], 0x5B02: [0, 2300], 0x5B04: [0xFFFF, 0xFFFF],
        0x5B0C: [0, 1600], 0x5B0E: [0, 1550], 0x5B10: [0xFFFF, 0xFFFF],
        0x5B14: [0x0010, 0xD880], 0x5B16: [0x0005, 0x9D80], 0x5B18: [0x0005, 0x9D80],
        0x5B1A: [0x7FFF, 0xFFFF], 0x5B2C: [5000], 0x5B3A: [998],
    }, dict(energy_wh=1_234_500.0, energy_export_wh=1_000.0, voltage_v=230.1, voltage_l2_v=230.0,
            voltage_l3_v=None, current_a=16.0, current_l2_a=15.5, current_l3_a=None, power_w=11_040.0,
            power_l1_w=3680.0, power_l2_w=3680.0, power_l3_w=None, frequency_hz=50.0, power_factor=0.998)),
    "em340": (FC04, {  # INT32 low word first: V/10, A/1000, W/10, kWh/10; INT16 PF/1000, Hz/10
        0x00: [2301, 0], 0x02: [2300, 0], 0x04: [2295, 0], 0x0C: [16000, 0], 0x0E: [15500, 0],
        0x10: [12500, 0], 0x12: [36800, 0], 0x14: [36800, 0], 0x16: [0xEC78, 0xFFFF],
        0x28: [0xAF40, 0x0001], 0x31: [1000], 0x33: [500], 0x34: [12345, 0], 0x4E: [125, 0],
    }, dict(voltage_v=230.1, voltage_l2_v=230.0, voltage_l3_v=229.5, current_a=16.0, current_l2_a=15.5,
            current_l3_a=12.5, power_l1_w=3680.0, power_l2_w=3680.0, power_l3_w=-500.0, power_w=11_040.0,
            power_factor=1.0, frequency_hz=50.0, energy_wh=1_234_500.0, energy_export_wh=12_500.0)),
    "acudc243": (FC03, {0x200: [0x43C8, 0], 0x202: [0x42FB, 0], 0x204: [0x4248, 0xCCCD],
                        0x300: [0x0001, 0xE240], 0x302: [0, 100]},
                 dict(voltage_v=400.0, current_a=125.5, power_w=50_200.0, energy_wh=1_234_560.0,
                      energy_export_wh=1_000.0)),
    "djsf1352_rn": (FC03, {  # value x 10^(exp-3): 40000e1 -> 400 V, -12550e1 -> -125.5 A, 5020e4 -> 50.2 kW
        0x00: [40000], 0x01: [1], 0x02: [(-12550) & 0xFFFF], 0x03: [1], 0x08: [5020], 0x09: [4],
        0x0C: [0x0012, 0xD687], 0x0E: [0, 42],
    }, dict(voltage_v=400.0, current_a=-125.5, power_w=50_200.0, energy_wh=1_234_567.0,
            energy_export_wh=42.0)),
}
CASES["abb_b24"] = CASES["abb_b23"]
BLOCKS_PER_POLL = {"sdm630": 1, "sdm72dm_v2": 1, "sdm72d_m": 1, "sdm120": 1, "abb_b23": 2, "abb_b24": 2,
                   "em340": 2, "acudc243": 2, "djsf1352_rn": 1}


def block_words(blocks: tuple[ReadBlock, ...], table: FunctionCode,
                values: dict[int, list[int]]) -> list[list[int]]:
    """What the meter answers for `blocks`: `values` at their addresses, zeros between."""
    answers = [[0] * block.count for block in blocks]
    for address, words in values.items():
        span = ReadBlock(table, address, len(words))
        index = next(i for i, block in enumerate(blocks) if block.contains(span))
        offset = address - blocks[index].address
        answers[index][offset:offset + len(words)] = words
    return answers


def assert_reading(snapshot: MeterSnapshot, expected: dict[str, float | None]) -> None:
    for field, value in expected.items():
        actual = getattr(snapshot, field)
        assert actual == (None if value is None else pytest.approx(value, rel=1e-6)), field


def test_every_shipped_model_has_a_case_and_every_quantity_a_snapshot_field() -> None:
    assert sorted(CASES) == sorted(METER_MAPS) == sorted(BLOCKS_PER_POLL)
    assert {f for f in SNAPSHOT_FIELDS.values()} == set(MeterSnapshot.__dataclass_fields__)


@pytest.mark.parametrize("model", sorted(CASES))
def test_raw_register_words_decode_to_the_reading(model: str) -> None:
    table, values, expected = CASES[model]
    meter = meter_map(model)
    blocks = plan_blocks(meter)
    assert_reading(decode_blocks(meter, blocks, block_words(blocks, table, values)), expected)


@pytest.mark.parametrize("model", sorted(CASES))
def test_the_simulator_words_for_a_reading_decode_back_to_it(model: str) -> None:
    _, _, expected = CASES[model]
    meter = meter_map(model)
    reading = MeterSnapshot(**{f: v for f, v in expected.items() if v is not None})
    blocks = plan_blocks(meter)
    answers = [[0] * block.count for block in blocks]
    for write in encode_quantities(meter, reading):
        span = ReadBlock(write.table, write.address, len(write.words))
        index = next(i for i, block in enumerate(blocks) if block.contains(span))
        offset = write.address - blocks[index].address
        answers[index][offset:offset + len(write.words)] = write.words
    assert_reading(decode_blocks(meter, blocks, answers), expected)


def test_abb_required_quantity_marked_not_available_is_an_unusable_reading() -> None:
    table, values, _ = CASES["abb_b23"]
    meter = meter_map("abb_b23")
    blocks = plan_blocks(meter)
    with pytest.raises(RegisterValueError, match="energy_import is marked not available"):
        decode_blocks(meter, blocks, block_words(blocks, table, {**values, 0x5000: [0xFFFF] * 4}))
    with pytest.raises(RegisterValueError, match="power is marked not available"):
        decode_blocks(meter, blocks, block_words(blocks, table, {**values, 0x5B14: [0x7FFF, 0xFFFF]}))


@pytest.mark.parametrize(("model", "patch", "why"), [
    ("em340", {0x31: [1500]}, "power_factor is outside -1..1"),
    ("em340", {0x34: [0xFFFF, 0xFFFF]}, "energy_import is negative"),
    ("djsf1352_rn", {0x01: [40]}, "exponent 40 is out of range"),
    ("sdm630", {0x46: [0xC248, 0]}, "frequency is negative"),
    ("sdm630", {0x4A: [0x7FC0, 0]}, "energy_export is nan"),
])
def test_out_of_range_words_are_refused(model: str, patch: dict[int, list[int]], why: str) -> None:
    table, values, _ = CASES[model]
    meter = meter_map(model)
    blocks = plan_blocks(meter)
    with pytest.raises(RegisterValueError, match=why):
        decode_blocks(meter, blocks, block_words(blocks, table, {**values, **patch}))


# ---- block plans ------------------------------------------------------------------------

@pytest.mark.parametrize("model", sorted(BLOCKS_PER_POLL))
def test_each_model_is_read_in_the_fewest_blocks_its_limits_allow(model: str) -> None:
    meter = meter_map(model)
    blocks = plan_blocks(meter)
    assert len(blocks) == minimal_block_count(meter) == BLOCKS_PER_POLL[model]
    assert all(block.count <= meter.max_block_registers for block in blocks)
    for register in meter.registers:
        for span in register.spans():
            assert any(block.contains(span) for block in blocks), (register.quantity, span)


def test_acrel_exponent_registers_are_read_with_their_values() -> None:
    assert plan_blocks(meter_map("djsf1352_rn")) == (ReadBlock(FC03, 0x00, 16),)


@st.composite
def spans_and_limits(draw: st.DrawFn) -> tuple[list[ReadBlock], int, int]:
    spans = draw(st.lists(st.builds(ReadBlock, st.sampled_from([FC03, FC04]), st.integers(0, 200),
                                    st.sampled_from([1, 2, 4])), min_size=1, max_size=12))
    return spans, draw(st.integers(4, 60)), draw(st.integers(0, 40))


@given(spans_and_limits())
def test_the_greedy_plan_always_reaches_the_exhaustive_minimum(case) -> None:
    spans, max_block, max_gap = case
    blocks = plan_spans(spans, max_block, max_gap)
    assert len(blocks) == minimal_span_blocks(spans, max_block, max_gap)
    assert all(block.count <= max_block for block in blocks)
    assert all(any(block.contains(span) for block in blocks) for span in spans)


# ---- map files --------------------------------------------------------------------------

GOOD_MAP = """\
description = "test meter"
max_block_registers = 20
max_gap_registers = 4

[defaults]
function_code = 4
data_type = "float32"

[quantities]
power = { address = 0x00, unit = "W" }
energy_import = { address = 0x02, unit = "kWh" }
"""


def write_map(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str) -> str:
    assert old in GOOD_MAP
    return GOOD_MAP.replace(old, new)


@pytest.mark.parametrize(("text", "message"), [
    pytest.param(edited('unit = "W"', 'unit = "kWh"'), r"quantities\.power: .*does not measure it",
                 id="unit"),
    pytest.param(edited("address = 0x00", "adress = 0x00"), r"quantities\.power\.adress: Extra inputs",
                 id="typo-in-a-key"),
    pytest.param(edited("power =", "voltage_l4 ="), r"quantities\.voltage_l4\.quantity: Input should be",
                 id="unknown-quantity"),
    pytest.param(edited("power =", "voltage =").replace('"W"', '"V"'),
                 r"required quantities missing: \['power'\]", id="required-missing"),
    pytest.param(edited("function_code = 4", "function_code = 1"),
                 r"quantities\.power\.function_code: .*FC03 or FC04", id="coil-table"),
    pytest.param(edited("address = 0x02", "address = 0x01"), "power and energy_import overlap at FC04 @1",
                 id="overlap"),
    pytest.param(edited("max_block_registers = 20", "max_block_registers = 200"),
                 r"max_block_registers: .*125", id="block-limit"),
    pytest.param(edited('data_type = "float32"', 'data_type = "float16"'), r"quantities\.power\.data_type",
                 id="unknown-type"),
    pytest.param(edited("address = 0x02,", "address = 0x02, exponent_address = 0x03,"), "inside the value",
                 id="exponent-inside-value"),
    pytest.param(GOOD_MAP + '\n[probe]\nquantity = "frequency"\nminimum = 45\nmaximum = 65\n',
                 "probe quantity frequency", id="probe-unmapped"),
    pytest.param(edited("[defaults]", "[defaults]\naddress = 0"), "defaults: only", id="default-address"),
    pytest.param('model = "x"\n' + GOOD_MAP, "model: remove it", id="model-key"),
    pytest.param(edited("[quantities]", "[quantities"), "invalid TOML", id="toml-syntax"),
])
def test_an_invalid_map_file_fails_naming_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    write_map(tmp_path, "broken_meter", text)
    with pytest.raises(MeterMapError, match=message) as raised:
        load_meter_maps([tmp_path])
    assert "broken_meter.toml" in str(raised.value)


def test_a_station_folder_adds_models_and_may_not_redefine_one(tmp_path: Path) -> None:
    write_map(tmp_path / "station", "my_meter", GOOD_MAP)
    folders = map_folders({MAPS_DIR_ENV: str(tmp_path / "station")})
    assert folders == [SHIPPED_MAPS_DIR, tmp_path / "station"]
    maps = load_meter_maps(folders)
    assert maps["my_meter"].register(meter_map("sdm630").registers[0].quantity) is None
    assert set(METER_MAPS) < set(maps)
    write_map(tmp_path / "station", "sdm630", GOOD_MAP)
    with pytest.raises(MeterMapError, match=r"sdm630\.toml: model 'sdm630' is already defined by .*sdm630"):
        load_meter_maps(folders)
    with pytest.raises(MeterMapError, match="not a folder"):
        map_folders({MAPS_DIR_ENV: str(tmp_path / "missing")})
    assert map_folders({}) == [SHIPPED_MAPS_DIR]


def _import_maps(maps_dir: Path) -> subprocess.CompletedProcess[str]:
    code = "from workers.drivers.meter_maps import METER_MAPS; print(' '.join(sorted(METER_MAPS)))"
    env = {**os.environ, MAPS_DIR_ENV: str(maps_dir)}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=30, check=False)


def test_meter_maps_dir_is_read_at_import_and_a_broken_file_stops_the_import(tmp_path: Path) -> None:
    write_map(tmp_path, "my_meter", GOOD_MAP)
    loaded = _import_maps(tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert "my_meter" in loaded.stdout.split() and "sdm630" in loaded.stdout.split()
    write_map(tmp_path, "typo_meter", GOOD_MAP.replace("unit = ", "unti = "))
    failed = _import_maps(tmp_path)
    assert failed.returncode != 0
    assert "typo_meter.toml: " in failed.stderr
    assert "quantities.power.unti: Extra inputs are not permitted" in failed.stderr


# ---- the simulator and hw probe over a real Modbus server ------------------------------------

DEVICE_IDS = {model: index + 1 for index, model in enumerate(sorted(CASES))}
ABSENT_ID = 99


@pytest.fixture
async def meter_hub() -> AsyncIterator[tuple[ModbusHub, ModbusTcpServer]]:
    """Every shipped model as the simulator serves it, one device id each, on a real TCP server."""
    port = free_port()
    devices = [absent_devices()] + [meter_device(i, meter_map(m)) for m, i in DEVICE_IDS.items()]
    server = ModbusTcpServer(devices, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    for model, device_id in DEVICE_IDS.items():
        _, _, expected = CASES[model]
        reading = MeterSnapshot(**{f: v for f, v in expected.items() if v is not None})
        for write in encode_quantities(meter_map(model), reading):
            await server.async_setValues(device_id, write.table, write.address, write.words)
    hub = ModbusHub("meters", ModbusTcpBus(kind="modbus_tcp", host="127.0.0.1", port=port, timeout_s=0.3))
    try:
        yield hub, server
    finally:
        await hub.close()
        await server.shutdown()


async def test_the_driver_reads_every_model_from_the_simulator(meter_hub) -> None:
    hub, _ = meter_hub
    for model, device_id in DEVICE_IDS.items():
        assert_reading(await MeterDriver(hub, device_id, model).poll(), CASES[model][2])


@pytest.mark.parametrize(("model", "candidates"), [
    ("sdm630", ["sdm120", "sdm630", "sdm72dm_v2"]),  # one register layout: the family, not the model
    ("sdm72d_m", []),  # no voltage register: configure it by name
    ("abb_b24", ["abb_b23", "abb_b24"]),
    ("em340", ["em340"]),
    ("acudc243", ["acudc243"]),
    ("djsf1352_rn", ["djsf1352_rn"]),
])
async def test_hw_probe_names_the_models_a_device_answers_like(meter_hub, model: str,
                                                               candidates: list[str]) -> None:
    hub, _ = meter_hub
    assert sorted(await identify(hub, DEVICE_IDS[model])) == candidates


async def test_hw_probe_finds_nothing_where_no_meter_answers(meter_hub) -> None:
    hub, _ = meter_hub
    assert await identify(hub, ABSENT_ID) == []
