"""Every device condition that stops charging, as one table: the OCPP errorCode, the UI text
key and where the vendorErrorCode comes from.

One table, so the CSMS, the HMI and the session log name a fault the same way, and a new
controller flag cannot be added without deciding what the operator sees (a test walks every
flag). Station faults come from the IO module's inputs and stop everything; connector faults
come from a connector's own devices (contactor, charge controller, insulation monitor) and
stop that connector.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from bus.enums import ConnectorErrorCode as Code
from workers.drivers.controller import ControllerSnapshot, EvState
from workers.drivers.controllers.interface import ControllerError
from workers.drivers.io_module import ContactorFault, IoSnapshot
from workers.smartw.status import CONTROLLER_ERROR, ESTOP, Fault

# ---- station faults (IO inputs): every contactor opens, every power module goes off ----
DOOR_OPEN = Fault(Code.OTHER_ERROR, "door_open")
INSULATION = Fault(Code.GROUND_FAILURE, "insulation")  # the IMD's alarm relay, or its polled reading
SURGE_PROTECTION = Fault(Code.OTHER_ERROR, "surge_protection")
BREAKER = Fault(Code.OTHER_ERROR, "breaker")
IO_OUTPUTS_DROPPED = Fault(Code.INTERNAL_ERROR, "io_outputs_dropped")  # host watchdog or module reset

# ---- contactor faults (feedback contact against coil) ------------------------------------
CONTACTOR_WELDED = Fault(Code.POWER_SWITCH_FAILURE, "contactor_welded")
CONTACTOR_OPEN = Fault(Code.POWER_SWITCH_FAILURE, "contactor_open")
CONTACTOR_FAULTS: Mapping[ContactorFault, Fault] = MappingProxyType({
    ContactorFault.WELDED: CONTACTOR_WELDED,
    ContactorFault.NOT_CLOSING: CONTACTOR_OPEN,
})

# ---- a Type 2 socket's cable lock (its position switch against its coil: cable_lock.py) ----
LOCK_FAILURE = Fault(Code.CONNECTOR_LOCK_FAILURE, "lock_failure")

# ---- charge-controller flags, most severe first (a snapshot may carry several) ------------
CONTROLLER_FAULTS: tuple[tuple[ControllerError, Fault], ...] = (
    (ControllerError.INSULATION, INSULATION),
    (ControllerError.RESIDUAL_CURRENT, Fault(Code.GROUND_FAILURE, "residual_current")),
    (ControllerError.OVERVOLTAGE, Fault(Code.OVER_VOLTAGE, "overvoltage")),
    (ControllerError.OVERTEMPERATURE, Fault(Code.HIGH_TEMPERATURE, "overtemperature")),
    (ControllerError.CONTACTOR, Fault(Code.POWER_SWITCH_FAILURE, "contactor_fault")),
    (ControllerError.LOCK, LOCK_FAILURE),
    (ControllerError.DIODE, Fault(Code.EV_COMMUNICATION_ERROR, "diode_fault")),
    (ControllerError.CONTROL_PILOT, Fault(Code.EV_COMMUNICATION_ERROR, "pilot_fault")),
    (ControllerError.PROXIMITY, Fault(Code.EV_COMMUNICATION_ERROR, "proximity_fault")),
    (ControllerError.EV_COMMUNICATION, Fault(Code.EV_COMMUNICATION_ERROR, "ev_communication")),
    (ControllerError.SEQUENCE_TIMEOUT, Fault(Code.EV_COMMUNICATION_ERROR, "sequence_timeout")),
    (ControllerError.PRECHARGE, Fault(Code.OTHER_ERROR, "precharge_failed")),
    (ControllerError.EV_FAULT, Fault(Code.OTHER_ERROR, "ev_fault")),
    (ControllerError.INCOMPATIBLE, Fault(Code.OTHER_ERROR, "ev_incompatible")),
    (ControllerError.UNAVAILABLE, Fault(Code.OTHER_ERROR, "controller_unavailable")),
    (ControllerError.INTERNAL, Fault(Code.INTERNAL_ERROR, "controller_internal")),
)


def station_fault(io: IoSnapshot) -> Fault | None:
    """The IO inputs' verdict, most urgent first; an input station.toml does not wire (None)
    never faults."""
    if io.estop_pressed:
        return ESTOP
    if io.imd_alarm:
        return INSULATION
    if io.door_open:
        return DOOR_OPEN
    if io.spd_tripped:
        return SURGE_PROTECTION
    if io.breaker_tripped:
        return BREAKER
    return None


def controller_fault(snapshot: ControllerSnapshot) -> Fault | None:
    """The controller's most severe flag (EV state F without a flag: a generic controller
    error), carrying the controller's vendor code."""
    vendor_code = str(snapshot.error_code) if snapshot.error_code else None
    for flag, fault in CONTROLLER_FAULTS:
        if flag in snapshot.errors:
            return Fault(fault.error_code, fault.info, vendor_code)
    if snapshot.ev_state is EvState.F:
        return Fault(CONTROLLER_ERROR.error_code, CONTROLLER_ERROR.info, vendor_code)
    return None
