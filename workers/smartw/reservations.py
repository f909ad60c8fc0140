"""Reservations (OCPP ReserveNow) as smartw honours them: which connector is held, for whom.

ocpp16 owns the reservations (it answers the CSMS, keeps them in its table and ends them) and
publishes those in force on contract.RESERVATIONS; smartw reads that key every cycle and judges
each entry by its own expiry, so a reservation lapses on time whatever ocpp16 is doing. ocpp16
drops a reservation once the session that used it has started (SessionStarted.reservation_id);
until then smartw remembers which ones its sessions used and ignores them.

Which connectors a reservation holds (OCPP 1.6 §3.11, §5.13):
- a connector's own reservation holds that connector;
- the reservations of connector 0 ("any connector") hold the free connectors once no more of
  them are free than there are such reservations still to be served: the station keeps one free
  connector for each. Free: operative, no fault of its own and no interlock, no session, no EV
  plugged, not finishing, no start waiting for an EV (a start button waiting for a card does
  not count: the card decides), not held by its own reservation. A connector-0 reservation whose
  idTag already has a start waiting for its EV is being served and holds nothing more.
A held connector shows Reserved while it would otherwise be Available (status.py) and refuses a
start by an idTag its reservations do not admit (UI key 'reserved'); a plugged one shows
Preparing as usual (OCPP G2). An idTag admitted by a reservation (its own idTag, or the same
parentIdTag) starts normally; the session uses the connector's own reservation if that admits
it, else a connector-0 one that does, on whichever connector it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from pydantic import ValidationError

from bus import Bus, contract
from bus.messages import ReservationHold, Reservations, utcnow
from workers.smartw.connector import ConnectorRuntime
from workers.smartw.status import RESERVED

log = logging.getLogger(__name__)

ANY_CONNECTOR = 0  # OCPP connectorId of a reservation of the whole station


class ReservationBook:
    """The reservations in force, applied to smartw's connectors."""

    def __init__(self, connectors: Mapping[int, ConnectorRuntime]) -> None:
        self._connectors = connectors
        self._reservations = Reservations()
        self._used: set[int] = set()  # used by a session here; ocpp16 has not dropped them yet
        self._unreadable = False

    async def refresh(self, bus: Bus) -> None:
        """Read the reservations in force and mark each connector held or not (every cycle).
        A value that breaks the contract counts as no reservation (logged once)."""
        try:
            reservations = await bus.get(contract.RESERVATIONS) or Reservations()
        except ValidationError as error:
            if not self._unreadable:
                log.error("reservations on the bus are unreadable, none is honoured: %s", error)
            self._unreadable = True
            reservations = Reservations()
        else:
            self._unreadable = False
        self.take(reservations)

    def take(self, reservations: Reservations) -> None:
        self._used &= {hold.reservation_id for hold in reservations.holds}
        self._reservations = reservations
        now = utcnow()
        for connector in self._connectors.values():
            connector.reserved = bool(self.holders(connector, now))

    def used(self, reservation_id: int) -> None:
        """A session started with this reservation: it holds nothing from now on."""
        self._used.add(reservation_id)

    def holders(self, connector: ConnectorRuntime, now: datetime | None = None) -> list[ReservationHold]:
        """The reservations holding `connector` now; empty: anyone may start there."""
        active = self._active(now or utcnow())
        own = [hold for hold in active if hold.connector_id == connector.id]
        if own:
            return own
        anywhere = self._unserved_anywhere(active)
        if not anywhere or not self._free(connector, active):
            return []
        free = [other for other in self._connectors.values() if self._free(other, active)]
        return anywhere if len(free) <= len(anywhere) else []

    def refusal(self, connector: ConnectorRuntime, id_tag: str, parent_id_tag: str | None) -> str | None:
        """Why `id_tag` (of group `parent_id_tag`) may not start on `connector` (UI key), or None."""
        holders = self.holders(connector)
        if holders and not any(hold.admits(id_tag, parent_id_tag) for hold in holders):
            return RESERVED
        return None

    def reservation_for(self, connector: ConnectorRuntime, id_tag: str,
                        parent_id_tag: str | None) -> int | None:
        """The reservation a session of `id_tag` on `connector` uses: the connector's own first,
        else one of connector 0; None when none admits it."""
        places = (connector.id, ANY_CONNECTOR)
        usable = [hold for hold in self._active(utcnow())
                  if hold.connector_id in places and hold.admits(id_tag, parent_id_tag)]
        usable.sort(key=lambda hold: hold.connector_id == ANY_CONNECTOR)
        return usable[0].reservation_id if usable else None

    def needs_parent(self, connector: ConnectorRuntime, id_tag: str) -> bool:
        """Whether only the idTag's group (parentIdTag, learnt from Authorize) can let it start
        here: the connector is held, no reservation admits the idTag itself, one has a group."""
        holders = self.holders(connector)
        return (bool(holders) and not any(hold.admits(id_tag, None) for hold in holders)
                and any(hold.parent_id_tag for hold in holders))

    def shut_out(self, id_tag: str, target: ConnectorRuntime | None) -> bool:
        """Whether a card cannot start anywhere for a reservation's sake, whatever its group: every
        connector it could start on (`target`, or any that can take a session) is held by
        reservations that neither admit it nor have a group. Such a card is not even authorized
        (OCTT TC_046_1_CS step 5)."""
        candidates = [target] if target is not None else [
            c for c in self._connectors.values() if c.operative and c.fault is None
            and c.interlock is None and c.session is None and not c.stopping]
        if not candidates:
            return False
        for connector in candidates:
            holders = self.holders(connector)
            if not holders or any(hold.admits(id_tag, None) or hold.parent_id_tag for hold in holders):
                return False
        return True

    def reserved_for(self, id_tag: str, parent_id_tag: str | None) -> ConnectorRuntime | None:
        """The connector whose own reservation admits this idTag and that can wait for its EV
        (so a card presented before plugging starts there, OCTT TC_046_1_CS), or None."""
        now = utcnow()
        for hold in self._active(now):
            connector = self._connectors.get(hold.connector_id)
            if (connector is not None and hold.admits(id_tag, parent_id_tag) and connector.operative
                    and connector.session is None and connector.pending is None and not connector.plugged):
                return connector
        return None

    def _active(self, now: datetime) -> list[ReservationHold]:
        return [hold for hold in self._reservations.active(now) if hold.reservation_id not in self._used]

    def _unserved_anywhere(self, active: list[ReservationHold]) -> list[ReservationHold]:
        """Connector-0 reservations whose idTag has no start waiting for its EV yet."""
        waiting = [(c.pending.id_tag, c.pending.parent_id_tag) for c in self._connectors.values()
                   if c.pending is not None and c.pending.id_tag is not None]
        return [hold for hold in active if hold.connector_id == ANY_CONNECTOR
                and not any(hold.admits(tag, parent) for tag, parent in waiting)]

    @staticmethod
    def _free(connector: ConnectorRuntime, active: list[ReservationHold]) -> bool:
        waiting_for_ev = connector.pending is not None and connector.pending.id_tag is not None
        return (connector.operative and connector.fault is None and connector.interlock is None
                and connector.session is None and not connector.stopping and not waiting_for_ev
                and not connector.plugged and not connector.finishing
                and not any(hold.connector_id == connector.id for hold in active))
