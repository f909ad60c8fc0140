"""The OCPP status a connector shows is derived from facts."""

from __future__ import annotations

import pytest

from bus.enums import ConnectorErrorCode, ConnectorStatus
from workers.smartw.status import ESTOP, IO_OFFLINE, ConnectorFacts, derive_status

IDLE = ConnectorFacts(fault=None, plugged=False, session_active=False, ev_requesting=False,
                      allocated_w=0.0, start_pending=False, finishing=False)


def facts(**changes) -> ConnectorFacts:
    return ConnectorFacts(**{**IDLE.__dict__, **changes})


@pytest.mark.parametrize(("given", "expected"), [
    (facts(), ConnectorStatus.AVAILABLE),
    (facts(plugged=True), ConnectorStatus.PREPARING),
    (facts(start_pending=True), ConnectorStatus.PREPARING),
    (facts(plugged=True, session_active=True, ev_requesting=True, allocated_w=1000),
     ConnectorStatus.CHARGING),
    (facts(plugged=True, session_active=True, ev_requesting=False, allocated_w=1000),
     ConnectorStatus.SUSPENDED_EV),
    (facts(plugged=True, session_active=True, ev_requesting=True, allocated_w=0),
     ConnectorStatus.SUSPENDED_EVSE),
    (facts(plugged=True, finishing=True), ConnectorStatus.FINISHING),
    (facts(plugged=False, finishing=True), ConnectorStatus.AVAILABLE),
])
def test_status_follows_the_facts(given: ConnectorFacts, expected: ConnectorStatus) -> None:
    assert derive_status(given)[0] is expected


@pytest.mark.parametrize("fault", [ESTOP, IO_OFFLINE])
def test_a_fault_wins_over_everything_and_carries_its_error_code(fault) -> None:
    status, code, info, _ = derive_status(facts(fault=fault, plugged=True, session_active=True,
                                             ev_requesting=True, allocated_w=5000))
    assert status is ConnectorStatus.FAULTED
    assert code is fault.error_code and code is not ConnectorErrorCode.NO_ERROR
    assert info == fault.info
