"""Charge controllers behind one interface: `interface` (what smartw sees), one module per
controller model (`station_dc`: the project's own protocol; `phoenix_ev_cc`), and the
`registry` that builds the model station.toml names."""

from workers.drivers.controllers.interface import (
    ChargeController,
    ControllerError,
    ControllerSnapshot,
    EvDemand,
    EvState,
    LeaseState,
    OutputLimits,
    OutputMeasurement,
    SessionPhase,
    UnsupportedCommand,
)
from workers.drivers.controllers.registry import MODELS, ControllerConfigError, build_controller

__all__ = [
    "MODELS",
    "ChargeController",
    "ControllerConfigError",
    "ControllerError",
    "ControllerSnapshot",
    "EvDemand",
    "EvState",
    "LeaseState",
    "OutputLimits",
    "OutputMeasurement",
    "SessionPhase",
    "UnsupportedCommand",
    "build_controller",
]
