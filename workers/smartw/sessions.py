"""Starting and stopping charging sessions: hardware order, the durable row, the bus event.

Order matters for safety (invariant 3): a contactor closes while the controller offers no
power, and opens only after the measured power has fallen to zero (except on e-stop or a
lost IO module, where it opens at once). The same order holds when an AC session waits for its
EV to come back (workers/smartw/ocpp_rules.py): the contactor opens when the EV leaves and
closes again, without power, when one is plugged in.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from bus import Bus, contract
from bus.enums import StopReason
from bus.messages import MeterReading, utcnow
from webapp.station.models import ChargingSession
from workers.smartw import journal
from workers.smartw.connector import ActiveSession, ConnectorRuntime, PendingStart
from workers.smartw.hardware import HardwareError, StationHardware
from workers.smartw.ocpp_rules import OcppRules
from workers.smartw.reservations import ReservationBook
from workers.smartw.status import UNAVAILABLE
from workers.smartw.timeline import SessionTimeline

log = logging.getLogger(__name__)

RAMP_DOWN_TIMEOUT_S = 4.0  # longest wait for the power to reach zero before opening
ZERO_POWER_W = 50.0  # below this the contactor may open (metering noise)
POLL_S = 0.1
METER_WAIT_S = 3.0  # longest wait for a first meter reading before a start is refused
EV_AWAY_RAMP_S = 1.0  # the EV has left: its current is gone, the output only has to be switched off


SessionEnded = Callable[[ConnectorRuntime, ActiveSession, StopReason], None]


class StartRefused(Exception):
    """A start cannot happen now; `reason` is a UI text key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SessionControl:
    """Owns the start/stop sequences of every connector."""

    def __init__(self, bus: Bus, hardware: StationHardware,
                 blocked: Callable[[], str | None], timeline: SessionTimeline,
                 changed: Callable[[], None] = lambda: None,
                 reservations: ReservationBook | None = None, ocpp: OcppRules | None = None,
                 ended: SessionEnded = lambda *_: None) -> None:
        self.bus = bus
        self.hardware = hardware
        self.blocked = blocked  # () -> UI key of a station-wide fault (e-stop, IO lost), or None
        self.timeline = timeline
        self.changed = changed  # a session started or is ending: share the power again at once
        self.reservations = reservations or ReservationBook({})  # none: nothing is ever reserved
        self.ocpp = ocpp or OcppRules({})  # none: the default session rules
        self.ended = ended  # a session ended, its contactor open (a socket's cable lock: cable_lock.py)

    async def start(self, connector: ConnectorRuntime, id_tag: str, parent_id_tag: str | None = None) -> str:
        """Start now if the EV is plugged, else hold the authorised start until it is.
        `parent_id_tag` is the idTag's group (a reservation may admit it). Returns a UI text
        key; raises StartRefused."""
        async with connector.lock:
            if connector.session is not None or connector.stopping:
                raise StartRefused("busy")
            if not connector.operative:  # nor may a start wait for a plug there
                raise StartRefused(UNAVAILABLE)
            reserved = self.reservations.refusal(connector, id_tag, parent_id_tag)
            if reserved:
                raise StartRefused(reserved)
            if not connector.plugged:
                connector.pending = PendingStart(id_tag=id_tag, parent_id_tag=parent_id_tag)
                return "plug_in_ev"
            meter = await self.fresh_meter(connector)
            if meter is None:
                raise StartRefused("meter_unavailable")
            blocked = self.refusal(connector)
            if blocked:  # checked last, right before closing: e-stop may come during the wait
                raise StartRefused(blocked)
            try:
                await self.hardware.set_output(connector.id, False, 0.0)
                await self.hardware.set_contactor(connector.id, True)
                reservation_id = self.reservations.reservation_for(connector, id_tag, parent_id_tag)
                await self._record_start(connector, id_tag, parent_id_tag, meter, reservation_id)
            except HardwareError as error:
                log.error("connector %s: cannot close contactor: %s", connector.id, error)
                await self._open_quietly(connector)
                raise StartRefused("hardware_error") from error
            except BaseException:
                # Cancelled (the caller's deadline) or failed half-way: never leave a contactor
                # closed without a session. A row already written is closed (PowerLoss) and its
                # events published when smartw next starts.
                connector.session = None
                await asyncio.shield(self._open_quietly(connector))
                raise
            return "charging"

    def refusal(self, connector: ConnectorRuntime) -> str | None:
        """Why nothing may start on this connector now (UI key), or None."""
        fault = connector.controller_fault
        own = fault.info if fault else (None if connector.operative else UNAVAILABLE)
        return self.blocked() or own or connector.interlock  # interlock: e.g. its controller being flashed

    async def fresh_meter(self, connector: ConnectorRuntime) -> MeterReading | None:
        """The meter's latest reading; right after start-up counters may not have polled yet,
        so wait up to METER_WAIT_S for a first one rather than refuse the start."""
        deadline = time.monotonic() + METER_WAIT_S
        while True:
            connector.meter = await self.bus.get(contract.METER, meter=f"connector{connector.id}") \
                or connector.meter
            meter = connector.fresh_meter()
            if meter is not None or time.monotonic() > deadline:
                return meter
            await asyncio.sleep(POLL_S)

    async def _record_start(self, connector: ConnectorRuntime, id_tag: str, parent_id_tag: str | None,
                            meter: MeterReading, reservation_id: int | None) -> None:
        session = ActiveSession(session_id=uuid.uuid4().hex, id_tag=id_tag, started_at=utcnow(),
                                meter_start_wh=meter.energy_wh, parent_id_tag=parent_id_tag)
        connector.session, connector.pending, connector.finishing = session, None, False
        row = await ChargingSession.objects.acreate(
            session_id=session.session_id, connector_id=connector.id,
            standard=connector.config.standard.value, id_tag=id_tag, started_at=session.started_at,
            meter_start_wh=session.meter_start_wh, reservation_id=reservation_id,
            parent_id_tag=parent_id_tag or "",
        )
        if reservation_id is not None:
            self.reservations.used(reservation_id)
        self.changed()
        self.timeline.started(row)
        await journal.publish_started(self.bus, row)
        log.info("connector %s: session %s started for %s at %.0f Wh%s", connector.id, session.session_id,
                 id_tag, session.meter_start_wh, f" (reservation {reservation_id})" if reservation_id else "")

    async def stop(self, connector: ConnectorRuntime, reason: StopReason, *,
                   id_tag: str | None = None, immediate: bool = False,
                   ramp_timeout_s: float = RAMP_DOWN_TIMEOUT_S) -> bool:
        """End the running session; returns False if there was none. `immediate` (e-stop,
        lost IO) opens the contactor at once instead of after the ramp-down."""
        if immediate:
            await self._open_quietly(connector)
        async with connector.lock:
            session = connector.session
            if session is None:
                return False
            connector.stopping = True
            self.changed()
            try:
                await self._ramp_down_and_open(connector, ramp_timeout_s)
                await self._record_stop(connector, session, reason, id_tag)
            finally:
                self.ended(connector, session, reason)
                connector.session, connector.stopping, connector.ev_away = None, False, False
                self.changed()
                connector.allocated_w = 0.0
                connector.finishing = connector.plugged
            return True

    async def ev_left(self, connector: ConnectorRuntime) -> None:
        """The EV of a session that goes on has been unplugged: switch the output off and open
        the contactor (StopTransactionOnEVSideDisconnect false, AC only: ocpp_rules.py)."""
        async with connector.lock:
            if connector.session is None or connector.stopping or not connector.ev_away:
                return
            log.info("connector %s: EV unplugged; session %s waits for it (SuspendedEV)",
                     connector.id, connector.session.session_id)
            connector.allocated_w = 0.0
            self.changed()
            await self._ramp_down_and_open(connector, EV_AWAY_RAMP_S)

    async def ev_returned(self, connector: ConnectorRuntime) -> None:
        """An EV was plugged into a connector whose session waits for one: close the contactor
        again while the controller offers no power; the next cycle shares power as usual."""
        async with connector.lock:
            if connector.session is None or connector.stopping or not connector.ev_away:
                return
            try:
                await self.hardware.set_output(connector.id, False, 0.0)
                await self.hardware.set_contactor(connector.id, True)
            except (HardwareError, StartRefused) as error:  # a fault: the cycle ends the session
                log.error("connector %s: cannot resume session %s: %s", connector.id,
                          connector.session.session_id, error)
                await self._open_quietly(connector)
                return
            connector.ev_away = False
            self.changed()
            log.info("connector %s: EV plugged again; session %s resumes", connector.id,
                     connector.session.session_id)

    async def _ramp_down_and_open(self, connector: ConnectorRuntime, timeout_s: float) -> None:
        """Offer no more power, wait until the meter shows none (so meterStop is the final
        register and the contactor never opens under load), then open."""
        requested_at = utcnow()
        try:
            await self.hardware.set_output(connector.id, False, 0.0)
        except HardwareError as error:
            log.error("connector %s: cannot disable controller: %s", connector.id, error)
        await self._wait_for_zero_power(connector, requested_at, timeout_s)
        try:
            await self.hardware.set_contactor(connector.id, False)
        except HardwareError as error:
            log.error("connector %s: cannot open contactor: %s", connector.id, error)

    async def _wait_for_zero_power(self, connector: ConnectorRuntime, since: datetime,
                                   timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            reading = await self.bus.get(contract.METER, meter=f"connector{connector.id}")
            if reading is not None and reading.at > since and abs(reading.power_w) < ZERO_POWER_W:
                connector.meter = reading
                return
            await asyncio.sleep(POLL_S)
        log.warning("connector %s: power did not reach zero within %.1f s; opening anyway",
                    connector.id, timeout_s)

    async def _record_stop(self, connector: ConnectorRuntime, session: ActiveSession,
                           reason: StopReason, id_tag: str | None) -> None:
        meter = connector.meter
        meter_stop = meter.energy_wh if meter else session.meter_start_wh
        await ChargingSession.objects.filter(session_id=session.session_id).aupdate(
            stopped_at=utcnow(), meter_stop_wh=meter_stop,
            energy_wh=max(meter_stop - session.meter_start_wh, 0.0),
            peak_power_w=session.peak_power_w, stop_reason=reason.value, stop_id_tag=id_tag or "",
        )
        row = await ChargingSession.objects.aget(session_id=session.session_id)
        self.timeline.stopped(row)
        await journal.publish_stopped(self.bus, row)
        log.info("connector %s: session %s stopped (%s) at %.0f Wh", connector.id,
                 session.session_id, reason.value, meter_stop)

    async def _open_quietly(self, connector: ConnectorRuntime) -> None:
        try:
            await self.hardware.set_output(connector.id, False, 0.0)
            await self.hardware.set_contactor(connector.id, False)
        except HardwareError as error:
            log.error("connector %s: safe state not confirmed: %s", connector.id, error)
