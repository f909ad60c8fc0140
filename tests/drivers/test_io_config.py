"""station.toml's IO map: named inputs with polarity, layouts, the legacy keys, wiring errors,
and the shipped example files (ICP DAS, Owen) loading into working drivers."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from workers.common.io_config import InputSignal, IoPoint, Polarity
from workers.common.station_config import ConfigError, IoModuleConfig, StationConfig, load_station_config
from workers.drivers.imd import Imd
from workers.drivers.io_module import IoModule
from workers.drivers.modbus_hub import open_hubs

REPO = Path(__file__).resolve().parents[2]
METER = {"bus": "b", "device_id": 1, "model": "sdm630"}
CONTROLLER = {"bus": "b", "device_id": 21}


def station(io_module: dict[str, object], **extra: object) -> StationConfig:
    connectors = extra.pop("connectors", [{"id": 1, "standard": "Type2", "max_power_kw": 22,
                                           "contactor_coil": 0, "meter": METER, "controller": CONTROLLER}])
    return StationConfig.model_validate({
        "station": {"max_power_kw": 100},
        "buses": {"b": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": 502}},
        "io_module": {"bus": "b", "device_id": 10, **io_module},
        "rfid": {"port": "/dev/null", "baudrate": 9600},
        "connectors": connectors, **extra,
    })


def test_the_legacy_estop_input_is_a_normally_open_estop() -> None:
    io = station({"estop_input": 3}).io_module
    assert io.inputs.estop == IoPoint(address=3, polarity=Polarity.NO)
    assert (io.layout, io.inputs_function, io.inputs_device_id) == ("bits", 2, 10)


def test_inputs_take_a_bare_address_or_address_and_polarity() -> None:
    io = station({"inputs": {"estop": {"address": 32, "polarity": "nc"}, "door": 33}}).io_module
    assert [(signal, point.address, point.polarity) for signal, point in io.inputs.wired()] == [
        (InputSignal.ESTOP, 32, Polarity.NC), (InputSignal.DOOR, 33, Polarity.NO)]
    assert io.inputs.estop.active(False) and not io.inputs.estop.active(True)
    assert io.inputs.estop.level(active=False) is True


def test_owen_defaults_to_registers_50_and_51_read_with_fc04() -> None:
    io = station({"layout": "owen", "input_device_id": 11, "inputs": {"estop": 0}}).io_module
    assert (io.owen_registers, io.inputs_function, io.inputs_device_id) == ((50, 51), 4, 11)


@pytest.mark.parametrize(("io_module", "message"), [
    ({"estop_input": 0, "inputs": {"estop": 1}}, "not both"),
    ({"inputs": {}}, "inputs.estop"),
    ({"inputs": {"estop": {"address": 0, "polarity": "maybe"}}}, "polarity"),
    ({"inputs": {"estop": 0, "lamp": 1}}, "lamp"),
    ({"inputs": {"estop": -1}}, "address"),
    ({"layout": "bits", "input_function": 4, "inputs": {"estop": 0}}, "function"),
    ({"layout": "owen", "input_function": 2, "inputs": {"estop": 0}}, "function"),
    ({"layout": "bits", "output_register": 50, "inputs": {"estop": 0}}, "belong to layout 'owen'"),
    ({"layout": "relay", "inputs": {"estop": 0}}, "layout"),
    ({"poll_s": 0.5, "watchdog_s": 0.5, "inputs": {"estop": 0}}, "must exceed poll_s"),
    ({"inputs": {"estop": 0, "door": 0}}, "door and estop are both on input 0"),
    ({"inputs": {"estop": 0}, "fans": [0]}, "fans\\[0\\] and connector 1 coil are both on output 0"),
    ({"inputs": {"estop": 0}, "input_function": 1}, "estop and connector 1 coil|connector 1 coil and estop"),
])
def test_a_wrong_io_map_is_refused_naming_the_problem(io_module: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        station(io_module)


def test_a_contactor_feedback_on_an_input_already_used_is_refused() -> None:
    connector = {"id": 1, "standard": "CCS", "max_power_kw": 50, "contactor_coil": 0,
                 "contactor_feedback": {"address": 2}, "meter": METER, "controller": CONTROLLER}
    with pytest.raises(ValidationError, match="connector 1 feedback and door are both on input 2"):
        station({"inputs": {"estop": 0, "door": 2}}, connectors=[connector])


def test_the_imd_section_is_optional_and_checked() -> None:
    assert station({"estop_input": 0}).imd is None
    imd = station({"estop_input": 0}, imd={"bus": "b", "device_id": 3}).imd
    assert imd is not None
    assert (imd.alarm_threshold_kohm, imd.poll_s, imd.model) == (100.0, 1.0, "isocha425hv")
    with pytest.raises(ValidationError, match=r"imd\.bus names unknown bus 'rs485'"):
        station({"estop_input": 0}, imd={"bus": "rs485", "device_id": 3})
    with pytest.raises(ValidationError, match="alarm_threshold_kohm"):
        station({"estop_input": 0}, imd={"bus": "b", "device_id": 3, "alarm_threshold_kohm": 0})


def test_io_module_config_alone_validates_too() -> None:
    with pytest.raises(ValidationError, match="inputs"):
        IoModuleConfig.model_validate({"bus": "b", "device_id": 1})


@pytest.mark.parametrize(("name", "layout", "requests_per_poll"), [
    ("station.icpdas.toml", "bits", 1), ("station.owen.toml", "owen", 2)])
async def test_the_example_station_files_load_and_drive_the_io_module(name: str, layout: str,
                                                                      requests_per_poll: int) -> None:
    config = load_station_config(REPO / "docs" / "examples" / name, data_dir=REPO / "var")
    assert config.io_module.layout == layout
    assert config.io_module.inputs.estop.polarity is Polarity.NC
    assert all(c.contactor_feedback is not None for c in config.connectors)
    hubs = open_hubs(config)  # RTU clients connect lazily: no serial port is opened here
    try:
        assert IoModule.from_config(config, hubs).requests_per_poll == requests_per_poll
        assert config.imd is not None
        assert Imd.from_config(config.imd, hubs).alarm_threshold_ohm == 100_000.0
    finally:
        for hub in hubs.values():
            await hub.close()


def test_the_simulation_station_file_wires_door_imd_alarm_and_feedback() -> None:
    config = load_station_config(REPO / "ops" / "station.sim.toml", data_dir=REPO / "var")
    assert config.io_module.inputs.door == IoPoint(address=1, polarity=Polarity.NC)
    assert config.io_module.inputs.imd_alarm is not None and config.imd is not None
    assert [c.contactor_feedback for c in config.connectors] == [IoPoint(address=a) for a in (8, 9, 10, 11)]


def test_a_broken_example_names_the_file_and_field(tmp_path: Path) -> None:
    text = (REPO / "docs" / "examples" / "station.owen.toml").read_text(encoding="utf-8")
    broken = tmp_path / "station.toml"
    broken.write_text(text.replace("output_register = 50", "output_register = -1"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"station\.toml: io_module\.output_register"):
        load_station_config(broken, data_dir=tmp_path)
