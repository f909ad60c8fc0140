"""What a ReserveNow is answered (OCPP 1.6 §5.13; ocpp16.md §2.16), from smartw's published state.

A pure function of the request, the connectors' and the station's last published states, the
other reservations in force and ReserveConnectorZeroSupported, so every answer is testable
without a station. The rules, first match wins:

- Rejected: expiryDate not in the future; connectorId 0 while ReserveConnectorZeroSupported is
  false; a connectorId the station does not have.
- A connector (connectorId > 0): Unavailable when it is (or smartw has not described it yet);
  Faulted when it is; Occupied when another reservation holds it, or an EV is plugged or a
  session runs there (any status but Available/Reserved), or when taking it would leave fewer
  free connectors than there are connector-0 reservations; else Accepted.
- The station (connectorId 0): Unavailable / Faulted as the station (connector 0) is; Accepted
  when more connectors are free than there are connector-0 reservations already (one free
  connector is kept for each, workers/smartw/reservations.py); else Faulted if every connector
  is Faulted, Unavailable if every one is Faulted or Unavailable, Occupied otherwise.
Free: Available or Reserved (only by connector-0 reservations or the one this request
replaces), no EV plugged, no session, no reservation of its own. A request with the
reservationId of a reservation in force replaces it: that one is left out of `others`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ocpp.v16.enums import ReservationStatus

from bus.enums import ConnectorStatus
from bus.messages import ConnectorState, ReservationHold, StationState

ANY_CONNECTOR = 0
FREE_STATUSES = frozenset({ConnectorStatus.AVAILABLE, ConnectorStatus.RESERVED})


@dataclass(frozen=True)
class StationView:
    """smartw's last published state: connector 0 and each connector (None: not published)."""

    station: StationState | None
    connectors: Mapping[int, ConnectorState | None]


def decide(hold: ReservationHold, view: StationView, others: Sequence[ReservationHold], *,
           zero_supported: bool, now: datetime) -> ReservationStatus:
    """The ReserveNow answer for `hold` (the request), `others` being the reservations in force
    except the one it replaces."""
    if hold.expires_at <= now:
        return ReservationStatus.rejected
    if hold.connector_id == ANY_CONNECTOR:
        return _station(view, others) if zero_supported else ReservationStatus.rejected
    if hold.connector_id not in view.connectors:
        return ReservationStatus.rejected
    return _connector(hold.connector_id, view, others)


def _connector(connector_id: int, view: StationView, others: Sequence[ReservationHold]) -> ReservationStatus:
    state = view.connectors[connector_id]
    if state is None or state.status is ConnectorStatus.UNAVAILABLE:
        return ReservationStatus.unavailable
    if state.status is ConnectorStatus.FAULTED:
        return ReservationStatus.faulted
    if any(other.connector_id == connector_id for other in others) or not _idle(state):
        return ReservationStatus.occupied
    left_free = [cid for cid in free_connectors(view, others) if cid != connector_id]
    if len(left_free) < _anywhere(others):
        return ReservationStatus.occupied
    return ReservationStatus.accepted


def _station(view: StationView, others: Sequence[ReservationHold]) -> ReservationStatus:
    station = view.station
    if station is None or station.status is ConnectorStatus.UNAVAILABLE:
        return ReservationStatus.unavailable
    if station.status is ConnectorStatus.FAULTED:
        return ReservationStatus.faulted
    if len(free_connectors(view, others)) > _anywhere(others):
        return ReservationStatus.accepted
    statuses = [state.status if state else ConnectorStatus.UNAVAILABLE for state in view.connectors.values()]
    if all(status is ConnectorStatus.FAULTED for status in statuses):
        return ReservationStatus.faulted
    if all(status in (ConnectorStatus.FAULTED, ConnectorStatus.UNAVAILABLE) for status in statuses):
        return ReservationStatus.unavailable
    return ReservationStatus.occupied


def free_connectors(view: StationView, others: Sequence[ReservationHold]) -> list[int]:
    """Connectors a new reservation could take: idle and not held by a reservation of their own."""
    held = {other.connector_id for other in others}
    return [cid for cid, state in view.connectors.items()
            if state is not None and _idle(state) and cid not in held]


def _idle(state: ConnectorState) -> bool:
    return state.status in FREE_STATUSES and not state.plugged and state.session_id is None


def _anywhere(others: Sequence[ReservationHold]) -> int:
    return sum(1 for other in others if other.connector_id == ANY_CONNECTOR)
