"""Which OCPP 1.6 status a connector is in, derived from facts (never stored separately).

Deriving the status every cycle from the hardware and the session means it cannot drift
from reality; the state machine's memory is only the session and the pending start.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus.enums import ConnectorErrorCode, ConnectorStatus


@dataclass(frozen=True)
class Fault:
    """Why a connector cannot charge now: OCPP errorCode plus a UI text key."""

    error_code: ConnectorErrorCode
    info: str


ESTOP = Fault(ConnectorErrorCode.OTHER_ERROR, "estop")
IO_OFFLINE = Fault(ConnectorErrorCode.INTERNAL_ERROR, "io_offline")
CONTROLLER_OFFLINE = Fault(ConnectorErrorCode.INTERNAL_ERROR, "controller_offline")
CONTROLLER_ERROR = Fault(ConnectorErrorCode.OTHER_ERROR, "controller_error")


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


def derive_status(facts: ConnectorFacts) -> tuple[ConnectorStatus, ConnectorErrorCode, str]:
    if facts.fault is not None:
        return ConnectorStatus.FAULTED, facts.fault.error_code, facts.fault.info
    ok = ConnectorErrorCode.NO_ERROR
    if facts.session_active:
        if not facts.ev_requesting:
            return ConnectorStatus.SUSPENDED_EV, ok, "ev_paused"
        if facts.allocated_w <= 0:
            return ConnectorStatus.SUSPENDED_EVSE, ok, "waiting_for_power"
        return ConnectorStatus.CHARGING, ok, "charging"
    if facts.finishing and facts.plugged:
        return ConnectorStatus.FINISHING, ok, "unplug_ev"
    if facts.start_pending:
        return ConnectorStatus.PREPARING, ok, "awaiting_card_or_ev"
    if facts.plugged:
        return ConnectorStatus.PREPARING, ok, "present_card"
    return ConnectorStatus.AVAILABLE, ok, ""
