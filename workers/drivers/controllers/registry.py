"""Charge-controller drivers by model name (`connectors[].controller.model` in station.toml).

A vendor driver plugs in as one module: a class implementing `ChargeController` with a
`for_connector(hub, connector)` constructor, listed once in `MODELS` with the connector
standards it can drive. station_config's `ControllerModel` names the same models (a test keeps
them equal). The table is read-only, so a typo fails at start-up (STYLE habit 13).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from bus.enums import Standard
from workers.common.station_config import ConnectorConfig
from workers.drivers.controllers import phoenix_ev_cc, station_dc
from workers.drivers.controllers.interface import ChargeController
from workers.drivers.modbus_hub import ModbusHub


class ControllerFactory(Protocol):
    def __call__(self, hub: ModbusHub, connector: ConnectorConfig) -> ChargeController: ...


@dataclass(frozen=True)
class ControllerModel:
    build: ControllerFactory
    standards: frozenset[Standard]  # connector standards the controller can drive


class ControllerConfigError(ValueError):
    """station.toml names a controller the registry has not, or one unfit for the connector."""


MODELS = MappingProxyType({
    station_dc.MODEL: ControllerModel(station_dc.StationDcController.for_connector, frozenset(Standard)),
    phoenix_ev_cc.MODEL: ControllerModel(phoenix_ev_cc.PhoenixEvCcController.for_connector,
                                         frozenset({Standard.TYPE2})),
})


def controller_model(connector: ConnectorConfig) -> ControllerModel:
    """The connector's controller model, checked against the connector's standard."""
    name = connector.controller.model
    model = MODELS.get(name)
    if model is None:
        raise ControllerConfigError(f"connector {connector.id}: unknown controller model {name!r} "
                                    f"(known: {sorted(MODELS)})")
    if connector.standard not in model.standards:
        raise ControllerConfigError(f"connector {connector.id}: controller model {name!r} cannot drive "
                                    f"a {connector.standard} connector")
    return model


def build_controller(hub: ModbusHub, connector: ConnectorConfig) -> ChargeController:
    return controller_model(connector).build(hub, connector)
