"""The fault table: which OCPP errorCode, UI key and vendorErrorCode each device condition
becomes, and how the connector's published status carries them."""

from __future__ import annotations

import pytest

from bus.enums import ConnectorErrorCode as Code
from bus.enums import ConnectorStatus, Standard
from workers.common.station_config import ConnectorConfig
from workers.drivers.controller import ControllerSnapshot, EvState
from workers.drivers.controllers.interface import NO_ERRORS, ControllerError
from workers.drivers.io_module import ContactorFault, IoSnapshot
from workers.smartw import faults
from workers.smartw.connector import ConnectorRuntime
from workers.smartw.status import CONTROLLER_ERROR, ESTOP, ConnectorFacts, Fault, derive_status

IDLE = ConnectorFacts(fault=None, plugged=False, session_active=False, ev_requesting=False,
                      allocated_w=0.0, start_pending=False, finishing=False)


def facts(**changes) -> ConnectorFacts:
    return ConnectorFacts(**{**IDLE.__dict__, **changes})


def snapshot(errors: ControllerError = NO_ERRORS, error_code: int = 0,
             ev_state: EvState = EvState.C) -> ControllerSnapshot:
    return ControllerSnapshot(ev_state=ev_state, soc=40.0, target_soc=80.0, ev_max_power_w=50_000,
                              error_code=error_code, errors=errors)


def test_every_controller_flag_has_exactly_one_entry() -> None:
    flags = [flag for flag, _ in faults.CONTROLLER_FAULTS]
    assert sorted(flags) == sorted(ControllerError)
    assert all(fault.error_code is not Code.NO_ERROR and fault.info for _, fault in faults.CONTROLLER_FAULTS)


@pytest.mark.parametrize(("flag", "code"), [
    (ControllerError.OVERTEMPERATURE, Code.HIGH_TEMPERATURE),
    (ControllerError.INSULATION, Code.GROUND_FAILURE),
    (ControllerError.RESIDUAL_CURRENT, Code.GROUND_FAILURE),
    (ControllerError.DIODE, Code.EV_COMMUNICATION_ERROR),
    (ControllerError.CONTROL_PILOT, Code.EV_COMMUNICATION_ERROR),
    (ControllerError.EV_COMMUNICATION, Code.EV_COMMUNICATION_ERROR),
    (ControllerError.LOCK, Code.CONNECTOR_LOCK_FAILURE),
    (ControllerError.OVERVOLTAGE, Code.OVER_VOLTAGE),
    (ControllerError.CONTACTOR, Code.POWER_SWITCH_FAILURE),
    (ControllerError.INTERNAL, Code.INTERNAL_ERROR),
])
def test_a_controller_flag_becomes_its_ocpp_error_code_with_the_vendor_code(
        flag: ControllerError, code: Code) -> None:
    fault = faults.controller_fault(snapshot(flag, error_code=0x1234, ev_state=EvState.F))
    assert fault is not None
    assert (fault.error_code, fault.vendor_code) == (code, "4660")


def test_the_most_severe_flag_wins() -> None:
    errors = ControllerError.EV_COMMUNICATION | ControllerError.OVERTEMPERATURE | ControllerError.INSULATION
    fault = faults.controller_fault(snapshot(errors, error_code=7, ev_state=EvState.F))
    assert fault == Fault(Code.GROUND_FAILURE, "insulation", "7")


def test_state_f_without_a_flag_is_a_generic_controller_error_and_no_error_is_no_fault() -> None:
    fault = faults.controller_fault(snapshot(ev_state=EvState.F, error_code=42))
    assert (fault.error_code, fault.info, fault.vendor_code) == (
        CONTROLLER_ERROR.error_code, CONTROLLER_ERROR.info, "42")
    assert faults.controller_fault(snapshot()) is None


@pytest.mark.parametrize(("inputs", "expected"), [
    ({"estop_pressed": True, "door_open": True}, ESTOP),
    ({"door_open": True}, faults.DOOR_OPEN),
    ({"imd_alarm": True, "door_open": True}, faults.INSULATION),
    ({"spd_tripped": True}, faults.SURGE_PROTECTION),
    ({"breaker_tripped": True}, faults.BREAKER),
    ({"door_open": False, "imd_alarm": False, "spd_tripped": False, "breaker_tripped": False}, None),
    ({}, None),  # nothing optional wired: None inputs never fault
])
def test_io_inputs_become_station_faults(inputs: dict[str, bool], expected) -> None:
    assert faults.station_fault(IoSnapshot(**{"estop_pressed": False, **inputs})) == expected


def test_contactor_faults_are_power_switch_failures() -> None:
    welded = faults.CONTACTOR_FAULTS[ContactorFault.WELDED]
    stuck = faults.CONTACTOR_FAULTS[ContactorFault.NOT_CLOSING]
    assert (welded.error_code, welded.info) == (Code.POWER_SWITCH_FAILURE, "contactor_welded")
    assert (stuck.error_code, stuck.info) == (Code.POWER_SWITCH_FAILURE, "contactor_open")


def test_derive_status_carries_the_vendor_code_only_while_faulted() -> None:
    fault = faults.controller_fault(snapshot(ControllerError.LOCK, error_code=0x51, ev_state=EvState.F))
    derived = derive_status(facts(fault=fault, plugged=True))
    assert derived == (ConnectorStatus.FAULTED, Code.CONNECTOR_LOCK_FAILURE, "lock_failure", "81")
    assert derive_status(facts(plugged=True)).vendor_error_code is None


@pytest.mark.parametrize(("given", "expected"), [
    (facts(interlock="contactor_welded"), ConnectorStatus.UNAVAILABLE),
    (facts(interlock="contactor_welded", plugged=True, finishing=True), ConnectorStatus.UNAVAILABLE),
    (facts(interlock="contactor_welded", plugged=True, session_active=True, ev_requesting=True,
           allocated_w=7000), ConnectorStatus.CHARGING),  # a running session ends normally
    (facts(interlock="contactor_welded", fault=ESTOP), ConnectorStatus.FAULTED),
])
def test_an_interlock_makes_an_idle_connector_unavailable(given: ConnectorFacts, expected) -> None:
    derived = derive_status(given)
    assert derived.status is expected
    if expected is ConnectorStatus.UNAVAILABLE:
        assert (derived.error_code, derived.info) == (Code.NO_ERROR, "contactor_welded")


def test_the_published_state_shows_the_connectors_most_severe_own_fault() -> None:
    connector = ConnectorRuntime(ConnectorConfig.model_validate({
        "id": 1, "standard": Standard.CCS, "max_power_kw": 150, "contactor_coil": 0,
        "meter": {"bus": "meters", "device_id": 1, "model": "acudc243"},
        "controller": {"bus": "controllers", "device_id": 21},
    }))
    connector.controller_fault = faults.controller_fault(
        snapshot(ControllerError.OVERTEMPERATURE, error_code=9, ev_state=EvState.F))
    state = connector.snapshot(None)
    assert (state.status, state.error_code, state.vendor_error_code) == (
        ConnectorStatus.FAULTED, Code.HIGH_TEMPERATURE, "9")
    connector.contactor_fault = faults.CONTACTOR_WELDED
    state = connector.snapshot(None)
    assert (state.error_code, state.info, state.vendor_error_code) == (
        Code.POWER_SWITCH_FAILURE, "contactor_welded", None)
    assert connector.snapshot(faults.DOOR_OPEN).info == "door_open"  # the station's fault first
