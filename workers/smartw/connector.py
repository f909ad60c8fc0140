"""One connector's runtime: what smartw remembers between cycles, and its published snapshot.

A connector's own faults are kept apart by source (controller, contactor, insulation monitor,
cable lock), because each clears on its own condition; `fault` is the one that shows, the most
severe first.
What OCPP asks of a session (workers/smartw/ocpp_rules.py) is kept here too: how long a start
waits (ConnectionTimeOut), whether an AC session goes on while its EV is away, and the energy
allowance of a session whose idTag the CSMS refused.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime

from bus.messages import ConnectorState, MeterReading, utcnow
from workers.common.station_config import ConnectorConfig
from workers.drivers.controller import ControllerSnapshot, EvState
from workers.smartw.status import ConnectorFacts, Fault, derive_status

METER_FRESH_S = 3.0  # a meter reading older than this is not used for billing


@dataclass
class ActiveSession:
    session_id: str
    id_tag: str
    started_at: datetime
    meter_start_wh: float
    peak_power_w: float = 0.0
    parent_id_tag: str | None = None  # the idTag's group: a card of the same group may stop it
    energy_allowance_wh: float | None = None  # the CSMS refused the idTag: no power past this session energy


@dataclass
class PendingStart:
    """A start that waits: for a card (id_tag None) or for the EV to be plugged. It lapses after
    OCPP ConnectionTimeOut, counted from when it was asked with the value in force at each check
    (a CSMS that changes the key changes the waits already running)."""

    id_tag: str | None
    parent_id_tag: str | None = None  # the idTag's group, when Authorize gave one (reservations)
    asked_at: float = field(default_factory=time.monotonic)

    def expired(self, timeout_s: float) -> bool:
        return time.monotonic() > self.asked_at + timeout_s


@dataclass
class ConnectorRuntime:
    config: ConnectorConfig
    controller: ControllerSnapshot | None = None
    controller_fault: Fault | None = None
    contactor_fault: Fault | None = None  # welded (until the feedback opens) or not closing (until unplug)
    insulation_fault: Fault | None = None  # the insulation monitor's alarm (DC connectors only)
    lock_fault: Fault | None = None  # a Type 2 socket's cable lock did not follow (cable_lock.py)
    interlock: str | None = None  # UI key of a fault elsewhere that forbids new sessions here
    meter: MeterReading | None = None
    session: ActiveSession | None = None
    pending: PendingStart | None = None
    finishing: bool = False
    ev_away: bool = False  # the session goes on while its EV is unplugged (contactor open, OCPP SuspendedEV)
    allocated_w: float = 0.0
    stopping: bool = False
    operative: bool = True  # own and station availability (availability.py writes it)
    reserved: bool = False  # held by a reservation (reservations.py writes it every cycle)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def id(self) -> int:
        return self.config.id

    @property
    def plugged(self) -> bool:
        return self.controller is not None and self.controller.ev_state in (EvState.B, EvState.C)

    @property
    def ev_requesting(self) -> bool:
        return self.controller is not None and self.controller.ev_state is EvState.C

    @property
    def fault(self) -> Fault | None:
        """The connector's own fault (station faults are the station's), most severe first."""
        return self.contactor_fault or self.insulation_fault or self.lock_fault or self.controller_fault

    @property
    def drawing(self) -> bool:
        """A session that may be given power: running, not ending, its EV plugged in."""
        return self.session is not None and not self.stopping and not self.ev_away

    @property
    def session_energy_wh(self) -> float:
        session, meter = self.session, self.meter
        return max(meter.energy_wh - session.meter_start_wh, 0.0) if session and meter else 0.0

    @property
    def power_withheld(self) -> bool:
        """The session has used up the energy allowed after the CSMS refused its idTag."""
        allowance = self.session.energy_allowance_wh if self.session else None
        return allowance is not None and self.session_energy_wh >= allowance

    def fresh_meter(self) -> MeterReading | None:
        if self.meter is None or (utcnow() - self.meter.at).total_seconds() > METER_FRESH_S:
            return None
        return self.meter

    def facts(self, station_fault: Fault | None) -> ConnectorFacts:
        return ConnectorFacts(
            fault=station_fault or self.fault,
            plugged=self.plugged,
            session_active=self.session is not None,
            ev_requesting=self.ev_requesting,
            allocated_w=self.allocated_w,
            start_pending=self.pending is not None,
            finishing=self.finishing,
            interlock=self.interlock,
            operative=self.operative,
            reserved=self.reserved,
            ev_away=self.ev_away,
            power_withheld=self.power_withheld,
        )

    def snapshot(self, station_fault: Fault | None) -> ConnectorState:
        status, error_code, info, vendor_error_code = derive_status(self.facts(station_fault))
        meter, session, ctl = self.meter, self.session, self.controller
        meter_wh = meter.energy_wh if meter else 0.0
        return ConnectorState(
            connector_id=self.id, standard=self.config.standard, status=status,
            error_code=error_code, info=info, vendor_error_code=vendor_error_code, plugged=self.plugged,
            contactor_closed=session is not None and not self.ev_away,
            awaiting_card=self.pending is not None and self.pending.id_tag is None,
            power_w=meter.power_w if meter and session else 0.0,
            meter_wh=meter_wh,
            session_energy_wh=self.session_energy_wh,
            soc=ctl.soc if ctl else None, target_soc=ctl.target_soc if ctl else None,
            session_id=session.session_id if session else None,
            id_tag=session.id_tag if session else (self.pending.id_tag if self.pending else None),
            session_started_at=session.started_at if session else None,
            operative=self.operative,
        )
