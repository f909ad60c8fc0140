"""Which OCPP 1.6 status a connector is in, derived from facts (never stored separately).

Deriving the status every cycle from the hardware and the session means it cannot drift
from reality; the state machine's memory is only the session and the pending start (plus the
availability the operator or CSMS set, workers/smartw/availability.py, and the reservations
ocpp16 publishes, workers/smartw/reservations.py). A fault shows as Faulted
even on an Inoperative connector (OCPP's H9: Unavailable -> Faulted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from bus.enums import ConnectorErrorCode, ConnectorStatus


@dataclass(frozen=True)
class Fault:
    """Why a connector cannot charge now: OCPP errorCode, a UI text key, and the device's own
    code when it gave one (OCPP vendorErrorCode)."""

    error_code: ConnectorErrorCode
    info: str
    vendor_code: str | None = None


ESTOP = Fault(ConnectorErrorCode.OTHER_ERROR, "estop")
IO_OFFLINE = Fault(ConnectorErrorCode.INTERNAL_ERROR, "io_offline")
CONTROLLER_OFFLINE = Fault(ConnectorErrorCode.INTERNAL_ERROR, "controller_offline")
CONTROLLER_ERROR = Fault(ConnectorErrorCode.OTHER_ERROR, "controller_error")

UNAVAILABLE = "unavailable"  # UI key: set Inoperative (ChangeAvailability); also a start's refusal
RESERVED = "reserved"  # UI key: held by a reservation for someone else (reservations.py); also a refusal
EV_DISCONNECTED = "ev_disconnected"  # UI key: the session goes on while its EV is away (OCPP SuspendedEV)
DEAUTHORIZED = "deauthorized"  # UI key: the CSMS refused the idTag, no more energy (OCPP SuspendedEVSE)


@dataclass(frozen=True)
class ConnectorFacts:
    """Everything the status depends on, sampled in one cycle."""

    fault: Fault | None
    plugged: bool
    session_active: bool
    ev_requesting: bool
    allocated_w: float
    start_pending: bool  # a start was asked (button, card, remote) and waits for card or plug
    finishing: bool  # a session ended and the EV is still plugged
    interlock: str | None = None  # UI key of a fault elsewhere that forbids new sessions here
    operative: bool = True  # False: set Inoperative (its own or the station's availability)
    reserved: bool = False  # held by a reservation (OCPP ReserveNow, workers/smartw/reservations.py)
    ev_away: bool = False  # the session goes on while its EV is unplugged (StopTransactionOnEVSideDisconnect)
    power_withheld: bool = False  # the CSMS refused the session's idTag and its allowance is used up


class DerivedStatus(NamedTuple):
    status: ConnectorStatus
    error_code: ConnectorErrorCode
    info: str
    vendor_error_code: str | None = None


def derive_status(facts: ConnectorFacts) -> DerivedStatus:
    if facts.fault is not None:
        fault = facts.fault
        return DerivedStatus(ConnectorStatus.FAULTED, fault.error_code, fault.info, fault.vendor_code)
    ok = ConnectorErrorCode.NO_ERROR
    if facts.session_active:
        if facts.power_withheld:  # before the EV's own pause: both suspended is SuspendedEVSE
            return DerivedStatus(ConnectorStatus.SUSPENDED_EVSE, ok, DEAUTHORIZED)
        if facts.ev_away:
            return DerivedStatus(ConnectorStatus.SUSPENDED_EV, ok, EV_DISCONNECTED)
        if not facts.ev_requesting:
            return DerivedStatus(ConnectorStatus.SUSPENDED_EV, ok, "ev_paused")
        if facts.allocated_w <= 0:
            return DerivedStatus(ConnectorStatus.SUSPENDED_EVSE, ok, "waiting_for_power")
        return DerivedStatus(ConnectorStatus.CHARGING, ok, "charging")
    if not facts.operative:  # a change scheduled during a session applies as it ends (C8, F8)
        return DerivedStatus(ConnectorStatus.UNAVAILABLE, ok, UNAVAILABLE)
    if facts.interlock is not None:  # a running session ends normally; no new one starts
        return DerivedStatus(ConnectorStatus.UNAVAILABLE, ok, facts.interlock)
    if facts.finishing and facts.plugged:
        return DerivedStatus(ConnectorStatus.FINISHING, ok, "unplug_ev")
    if facts.start_pending:
        return DerivedStatus(ConnectorStatus.PREPARING, ok, "awaiting_card_or_ev")
    if facts.plugged:
        return DerivedStatus(ConnectorStatus.PREPARING, ok, "present_card")
    if facts.reserved:  # only in place of Available: plugged or starting is Preparing (OCPP G2)
        return DerivedStatus(ConnectorStatus.RESERVED, ok, RESERVED)
    return DerivedStatus(ConnectorStatus.AVAILABLE, ok, "")
