"""Controller models by name: station.toml's `model`, the registry, and what fits which connector."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import get_args

import pytest
from pydantic import ValidationError

from workers.common.station_config import ConnectorConfig, ControllerConfig, ControllerModel, ModbusTcpBus
from workers.drivers.controllers import MODELS, ControllerConfigError, build_controller
from workers.drivers.controllers.phoenix_ev_cc import PhoenixEvCcController
from workers.drivers.controllers.station_dc import StationDcController
from workers.drivers.modbus_hub import ModbusHub


def connector(standard: str, controller: dict) -> ConnectorConfig:
    return ConnectorConfig.model_validate({
        "id": 1, "standard": standard, "max_power_kw": 22.0, "contactor_coil": 0,
        "meter": {"bus": "b", "device_id": 1, "model": "sdm630"},
        "controller": {"bus": "b", "device_id": 21, **controller},
    })


@pytest.fixture
async def hub() -> AsyncIterator[ModbusHub]:
    """Never connected: building a driver touches no wire."""
    modbus_hub = ModbusHub("b", ModbusTcpBus(kind="modbus_tcp", host="127.0.0.1", port=1))
    yield modbus_hub
    await modbus_hub.close()


def test_station_toml_names_exactly_the_registered_models() -> None:
    assert set(get_args(ControllerModel)) == set(MODELS)


async def test_the_default_model_is_the_station_protocol(hub) -> None:
    assert ControllerConfig(bus="b", device_id=21).model == "station_dc"
    assert isinstance(build_controller(hub, connector("CCS", {})), StationDcController)


async def test_phoenix_options_reach_the_driver(hub) -> None:
    options = {"phases": 1, "voltage_v": 240.0, "state_byte": "low"}
    driver = build_controller(hub, connector("Type2", {"model": "phoenix_ev_cc", "phoenix": options}))
    assert isinstance(driver, PhoenixEvCcController)
    assert (driver.phases, driver.voltage_v, driver.state_byte) == (1, 240.0, "low")


async def test_an_ac_controller_on_a_dc_connector_is_a_config_error(hub) -> None:
    with pytest.raises(ControllerConfigError, match="cannot drive a CCS connector"):
        build_controller(hub, connector("CCS", {"model": "phoenix_ev_cc"}))


@pytest.mark.parametrize(("controller", "problem"), [
    ({"model": "ilontech"}, "literal_error"),
    ({"model": "station_dc", "phoenix": {"phases": 3}}, "for model 'phoenix_ev_cc'"),
    ({"model": "phoenix_ev_cc", "phoenix": {"phases": 2}}, "phases"),
    ({"model": "phoenix_ev_cc", "phoenix": {"state_byte": "middle"}}, "state_byte"),
])
def test_bad_controller_settings_fail_at_start_up(controller, problem) -> None:
    with pytest.raises(ValidationError, match=problem):
        connector("Type2", controller)
