"""What ocpp16 tells smartw to obey about sessions, read once per control cycle (one MGET).

ocpp16 owns the OCPP configuration keys and talks to the CSMS; smartw acts on what concerns a
session being started or running:
- contract.SESSION_RULES: ConnectionTimeOut (how long a start that was asked waits for its card
  or its EV) and StopTransactionOnEVSideDisconnect. While the key is missing (ocpp16 not started
  yet, or a station without OCPP) or unreadable, SessionRules' defaults apply.
- contract.OCPP_TRANSACTION per connector: the idTag's group (parentIdTag) StartTransaction.conf
  gave. It may differ from what Authorize said before the start, or be the first word on it after
  an offline start; a card of that group may stop the session (OCTT TC_069_CS).
- contract.OCPP_DEAUTHORIZED per connector: the CSMS refused the session's idTag and the session
  goes on (StopTransactionOnInvalidId false) with an energy allowance (MaxEnergyOnInvalidId, counted
  as the session's energy); past it the connector gets no power and shows SuspendedEVSE.

EV side disconnected (OCPP 1.6 §4.9, OCTT TC_005): with StopTransactionOnEVSideDisconnect true an
unplugged EV ends its session (EVDisconnected). With false an AC (Type 2) session goes on: its
contactor opens (nothing may stay live at an unplugged connector, IEC 61851 state A), the connector
shows SuspendedEV with info "ev_disconnected", and an EV plugged in again resumes it; a card, the
HMI or the CSMS stops it as usual. A DC session (CCS, CHAdeMO, GB/T) always ends: each DC standard
ends its own session when the plug leaves and a replugged EV runs the whole start sequence (cable
check, precharge) again, so the key cannot apply there.

UnlockConnectorOnEVSideDisconnect (also in contract.SESSION_RULES), and keeping a cable locked
after a DeAuthorized stop until its idTag returns, concern Type 2 sockets with a cable lock:
workers/smartw/cable_lock.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from bus import Bus, contract
from bus.client import KeyRead
from bus.messages import Deauthorized, OcppTransaction, SessionRules
from workers.smartw.connector import ConnectorRuntime

log = logging.getLogger(__name__)

ParentLearnt = Callable[[str, str], None]  # (session_id, parent_id_tag) -> keep it in the session's row


def same_id_tag(one: str | None, other: str | None) -> bool:
    """idTags are CiString20: equal without regard to case (OCPP 1.6 errata 3.73/3.74)."""
    return one is not None and other is not None and one.casefold() == other.casefold()


class OcppRules:
    """The session rules in force and what ocpp16 says about each running session."""

    def __init__(self, connectors: Mapping[int, ConnectorRuntime],
                 parent_learnt: ParentLearnt = lambda *_: None) -> None:
        self._connectors = connectors
        self._parent_learnt = parent_learnt
        self.rules = SessionRules()
        self._keys: list[tuple[Any, Mapping[str, Any]]] = [(contract.SESSION_RULES, {})]
        for connector_id in connectors:
            self._keys += [(contract.OCPP_TRANSACTION, {"connector_id": connector_id}),
                           (contract.OCPP_DEAUTHORIZED, {"connector_id": connector_id})]
        self._reported: set[str] = set()

    @property
    def connection_timeout_s(self) -> float:
        return self.rules.connection_timeout_s

    def ev_left_ends_session(self, connector: ConnectorRuntime) -> bool:
        """Whether unplugging the EV ends its session now (else it waits, SuspendedEV)."""
        return self.rules.stop_on_ev_side_disconnect or connector.config.is_dc

    async def refresh(self, bus: Bus) -> None:
        """Read the keys and apply them (every cycle). A Redis error propagates like any other
        read of the cycle; a value that breaks the contract counts as missing (logged once)."""
        reads = await bus.get_many(self._keys)
        self._report([read for read in reads if read.error is not None])
        rules, *per_connector = reads
        self._take_rules(rules.value or SessionRules())
        for index, connector in enumerate(self._connectors.values()):
            transaction, deauthorized = per_connector[2 * index], per_connector[2 * index + 1]
            self._take_transaction(connector, transaction.value)
            self._take_deauthorized(connector, deauthorized.value)

    def _take_rules(self, rules: SessionRules) -> None:
        if rules != self.rules:
            log.info("session rules: ConnectionTimeOut %g s, StopTransactionOnEVSideDisconnect %s",
                     rules.connection_timeout_s, rules.stop_on_ev_side_disconnect)
        self.rules = rules

    def _take_transaction(self, connector: ConnectorRuntime, transaction: OcppTransaction | None) -> None:
        session = connector.session
        if session is None or transaction is None or transaction.session_id != session.session_id:
            return
        parent = transaction.parent_id_tag
        if parent is not None and not same_id_tag(parent, session.parent_id_tag):
            log.info("connector %s: session %s belongs to group %s (StartTransaction.conf)",
                     connector.id, session.session_id, parent)
            session.parent_id_tag = parent
            self._parent_learnt(session.session_id, parent)

    @staticmethod
    def _take_deauthorized(connector: ConnectorRuntime, deauthorized: Deauthorized | None) -> None:
        session = connector.session
        if session is None or deauthorized is None or deauthorized.session_id != session.session_id:
            return
        if session.energy_allowance_wh != deauthorized.max_energy_wh:
            log.warning("connector %s: the CSMS refused idTag %s of session %s; no power past %.0f Wh "
                        "of session energy (MaxEnergyOnInvalidId)", connector.id, deauthorized.id_tag,
                        session.session_id, deauthorized.max_energy_wh)
            session.energy_allowance_wh = deauthorized.max_energy_wh

    def _report(self, broken: list[KeyRead[Any]]) -> None:
        problems = {f"{read.name}: {read.error}" for read in broken}
        for problem in sorted(problems - self._reported):
            log.error("bus key %s breaks the contract; ignored", problem)
        self._reported = problems
