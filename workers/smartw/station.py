"""One control cycle of the whole station: read devices, enforce safety, share power, publish.

The guard runs every IO poll period and touches only the hardware, so e-stop, an open door,
an insulation alarm, a tripped surge arrester or breaker, or a lost IO module opens every
contactor and switches every power module off within one period (safety invariant 2). The
cycle then ends the sessions and reacts to connector faults (faults.py has the table).

A welded contactor is a station-wide interlock: its connector's plug may carry the DC bus's
voltage, and contactor matrices share that bus, so no session starts anywhere until its
feedback reads open again; sessions already running elsewhere end normally. The interlock is
enforced where the contactor closes (`ContactorInterlock`, interlock.py), so no start can slip between the
guard's check and its own.
"""

from __future__ import annotations

import asyncio
import logging
import time

from bus import Bus, contract
from bus.enums import StopReason
from bus.messages import ConnectorState, MeterReading, StationState, utcnow
from workers.common.device_status import FAILURES_TO_UNAVAILABLE, DeviceStatusPublisher
from workers.common.station_config import StationConfig
from workers.drivers.controller import ControllerSnapshot
from workers.drivers.imd import ImdSnapshot
from workers.drivers.io_module import IoSnapshot
from workers.smartw import faults, journal
from workers.smartw.cable_lock import CableLocks
from workers.smartw.connector import ConnectorRuntime
from workers.smartw.hardware import HardwareError, StationHardware
from workers.smartw.interlock import ContactorInterlock
from workers.smartw.limits import LimitReader
from workers.smartw.ocpp_rules import OcppRules
from workers.smartw.power_control import ModuleDriver, PowerControl
from workers.smartw.requests import Requests
from workers.smartw.reservations import ReservationBook
from workers.smartw.sessions import SessionControl
from workers.smartw.status import CONTROLLER_OFFLINE, ESTOP, IO_OFFLINE, Fault
from workers.smartw.timeline import SessionTimeline
from workers.smartw.update_hold import UPDATING, UpdateHold

log = logging.getLogger(__name__)

IO_DEVICE = "io"
IMD_DEVICE = "imd"
FIRMWARE_UPDATE = "firmware_update"  # UI key: its controller is being flashed (also a start's refusal)


STATION_METER_FRESH_S = 10.0  # an older station meter reading is not headroom
OUTPUTS_DROPPED_POLLS = 2  # a read-back that differs this many polls in a row is not a write in flight


class StationLogic:
    def __init__(self, config: StationConfig, bus: Bus, hardware: StationHardware,
                 power_modules: ModuleDriver | None = None) -> None:
        self.config = config
        self.bus = bus
        self.hardware = hardware
        self.power_modules = power_modules
        self.connectors = {c.id: ConnectorRuntime(c) for c in config.connectors}
        self.power = PowerControl(config, hardware, power_modules)
        self.limits = LimitReader(config.connectors)
        self.station_meter: MeterReading | None = None
        self.timeline = SessionTimeline()
        self.wake = asyncio.Event()  # set when the power must be shared again before the next period
        self.reservations = ReservationBook(self.connectors)
        self.ocpp = OcppRules(self.connectors, self._parent_learnt)
        self.locks = CableLocks(self.connectors, hardware, config.io_module.lock_timeout_s, self.ocpp,
                                lambda c: self.control.stop(c, StopReason.UNLOCK_COMMAND))
        self.control = SessionControl(bus, ContactorInterlock(hardware, self.refusal, self.locks),
                                      self.blocked_reason, self.timeline, changed=self.wake.set,
                                      reservations=self.reservations, ocpp=self.ocpp,
                                      ended=self.locks.session_ended)
        self.requests = Requests(bus, self.connectors, self.control,
                                 release_cable=self.locks.release_for_card)
        self.station_fault: Fault | None = None
        self.io: IoSnapshot | None = None  # the guard's last good poll
        self.imd_fault: Fault | None = None
        self._outputs_differ_polls = 0
        self._published: dict[int, ConnectorState] = {}
        self._published_station: StationState | None = None
        self._controller_due: dict[int, float] = {}
        self._controller_failures = dict.fromkeys(self.connectors, 0)
        self._imd_due = 0.0
        self.devices = DeviceStatusPublisher(bus)
        self.update_hold = UpdateHold()  # an install waits: no session starts (update_hold.py)
        self.flashing: set[int] = set()  # connectors whose controller is being flashed (flashing.py)

    def blocked_reason(self) -> str | None:
        """Why no session may start anywhere now (UI key): a station fault or a welded contactor."""
        if self.station_fault is not None:
            return self.station_fault.info
        if self.update_hold.active:
            return UPDATING
        welded = any(c.contactor_fault is faults.CONTACTOR_WELDED for c in self.connectors.values())
        return faults.CONTACTOR_WELDED.info if welded else None

    def refusal(self, connector_id: int) -> str | None:
        """Why this connector's contactor may not close now (UI key), or None."""
        own = self.connectors[connector_id].fault
        flashing = FIRMWARE_UPDATE if connector_id in self.flashing else None
        return self.blocked_reason() or flashing or (own.info if own else None)

    async def guard(self) -> None:
        """The safety check, run in its own loop that touches only the hardware: neither a
        slow Redis nor a slow controller can delay the safe state (safety invariant 2). A
        fault makes everything safe when first seen, and again whenever a coil reads closed
        while it stands."""
        previous_fault = self.station_fault
        await self._read_safety_inputs()
        fault = self.station_fault
        if fault is not None:
            if fault != previous_fault or self._coil_closed():
                await self._make_safe()
        elif previous_fault is IO_OFFLINE:
            # Commands sent while the module was lost never arrived: say "open" again.
            await self.hardware.open_all(emergency=False)
            self.power.forget_links()

    def _coil_closed(self) -> bool:
        return self.io is not None and any(self.io.contactors_closed.values())

    async def _make_safe(self) -> None:
        """Contactors open and controllers off (IO and RS485) while the modules switch off (CAN):
        different buses, so a lost IO module's timeouts do not delay the modules."""
        await asyncio.gather(self.hardware.open_all(emergency=True), self._power_modules_off())
        self.power.forget_links()

    async def _power_modules_off(self) -> None:
        if self.power_modules is None:
            return
        try:
            await self.power_modules.switch_all_off()
        except Exception:  # the contactors are open already; a CAN failure must not stop the guard
            log.exception("power modules: switching off failed")

    async def cycle(self) -> None:
        """Sessions, power sharing and publishing; the guard has opened everything already
        when the station is faulted."""
        if self.station_fault is not None:
            self._end_sessions_for_fault()
        for connector in self.connectors.values():
            await self._read_connector(connector)
        await self._poll_imd()
        self._note_connector_faults()
        await self.ocpp.refresh(self.bus)
        await self.locks.follow(self.io)  # a lock fault is known before the sessions are followed
        if self.station_fault is None:
            await self._follow_evs()
            await self._share_power()
        await self.devices.flush()
        await self.reservations.refresh(self.bus)  # after this cycle's starts and stops
        await self._publish()

    async def _read_safety_inputs(self) -> None:
        io_bus = self.config.io_module.bus
        try:
            self.io = await self.hardware.read_io()
            dropped = self._outputs_dropped(self.io)  # counted on every poll, whatever else stands
            fault = faults.station_fault(self.io) or dropped
            self.devices.note(IO_DEVICE, bus_name=io_bus)
        except HardwareError as error:
            if self.station_fault is not IO_OFFLINE:
                log.error("IO module lost: %s", error)
            self.io, fault = None, IO_OFFLINE
            self.devices.note(IO_DEVICE, error=str(error), bus_name=io_bus)
        if fault != self.station_fault:
            log.log(logging.WARNING if fault else logging.INFO, "station fault: %s",
                    fault.info if fault else "cleared")
        self.station_fault = fault

    def _outputs_dropped(self, io: IoSnapshot) -> Fault | None:
        """The module dropped or changed its outputs (host watchdog, reset): the contactors are
        not as the sessions believe, so everything is made safe and the sessions end. One poll
        that differs may be a write still in flight, so it takes two in a row."""
        self._outputs_differ_polls = 0 if io.outputs_as_commanded else self._outputs_differ_polls + 1
        if self._outputs_differ_polls == OUTPUTS_DROPPED_POLLS:
            log.error("IO module outputs differ from what was commanded; commanding every contactor open")
        return faults.IO_OUTPUTS_DROPPED if self._outputs_differ_polls >= OUTPUTS_DROPPED_POLLS else None

    async def _read_connector(self, connector: ConnectorRuntime) -> None:
        connector.meter = await self.bus.get(contract.METER, meter=f"connector{connector.id}") \
            or connector.meter
        if connector.session is not None and connector.meter is not None:
            connector.session.peak_power_w = max(connector.session.peak_power_w, connector.meter.power_w)
        if connector.id in self.flashing:
            return  # its line time belongs to the flasher; it is polled again once it is back
        now = time.monotonic()
        # Half a cycle of slack: a controller due within it is read now, not a whole cycle late.
        if now < self._controller_due.get(connector.id, 0.0) - self.config.io_module.poll_s / 2:
            return
        self._controller_due[connector.id] = now + connector.config.controller.poll_s
        device, bus_name = f"controller:{connector.id}", connector.config.controller.bus
        try:
            view = await self.hardware.poll_controller(connector.id)
        except HardwareError as error:
            await self.devices.failed(device, str(error), bus_name=bus_name)
            failures = self._controller_failures[connector.id] = self._controller_failures[connector.id] + 1
            if failures < FAILURES_TO_UNAVAILABLE:
                return  # one late answer on a busy line is not a lost controller: its last view stands
            if connector.controller_fault is not CONTROLLER_OFFLINE:
                log.error("connector %s: controller lost: %s", connector.id, error)
            connector.controller_fault, connector.controller = CONTROLLER_OFFLINE, None
            return
        self._controller_failures[connector.id] = 0
        await self.devices.succeeded(device, bus_name=bus_name, firmware_version=view.firmware_version,
                                     fault=str(view.error_code) if view.error_code else None)
        was_plugged = connector.plugged
        connector.controller = view
        self._note_controller_fault(connector, view)
        if not was_plugged and connector.plugged:
            connector.finishing = False
            self.requests.spawn(self.requests.ev_plugged(connector))  # a start must not hold the cycle

    @staticmethod
    def _note_controller_fault(connector: ConnectorRuntime, view: ControllerSnapshot) -> None:
        fault = faults.controller_fault(view)
        if fault != connector.controller_fault and fault is not None:
            log.error("connector %s: controller reports %s (%s, vendor code %s)", connector.id,
                      fault.info, fault.error_code, fault.vendor_code)
        connector.controller_fault = fault

    async def _poll_imd(self) -> None:
        """The insulation monitor's availability and alarm, every `[imd].poll_s`. Its alarm
        faults the DC connectors; while it does not answer the last reading stands (a fault
        clears only on a good reading)."""
        imd = self.config.imd
        now = time.monotonic()
        if imd is None or now < self._imd_due:
            return
        self._imd_due = now + imd.poll_s
        try:
            snapshot = await self.hardware.poll_imd()
        except HardwareError as error:
            await self.devices.failed(IMD_DEVICE, str(error), bus_name=imd.bus)
            return
        if snapshot is not None:
            await self._note_imd(snapshot, imd.bus)

    async def _note_imd(self, snapshot: ImdSnapshot, bus_name: str) -> None:
        fault = "insulation" if snapshot.insulation_fault else (
            "device_error" if snapshot.device_error else None)
        await self.devices.succeeded(IMD_DEVICE, bus_name=bus_name, fault=fault)
        imd_fault = faults.INSULATION if snapshot.insulation_fault else None
        if imd_fault != self.imd_fault:
            log.log(logging.ERROR if imd_fault else logging.INFO, "insulation monitor: %s (%s Ohm)",
                    "insulation fault" if imd_fault else "insulation good again", snapshot.resistance_ohm)
        self.imd_fault = imd_fault

    def _note_connector_faults(self) -> None:
        """Contactor feedback (from the guard's last poll) and the insulation monitor, per
        connector; then the welded-contactor interlock for every connector."""
        for connector in self.connectors.values():
            connector.insulation_fault = self.imd_fault if connector.config.is_dc else None
            if self.io is not None:  # IO lost: what was known stands
                self._note_contactor(connector, self.io)
        self.note_interlocks()

    def note_interlocks(self) -> None:
        """What forbids new sessions on each connector from outside it: a welded contactor
        anywhere, the update hold, or its controller being flashed (called every cycle, and at
        once when a hold or a flash begins or ends)."""
        self.update_hold.lapse()
        welded = any(c.contactor_fault is faults.CONTACTOR_WELDED for c in self.connectors.values())
        held = UPDATING if self.update_hold.active else None
        interlock = faults.CONTACTOR_WELDED.info if welded else held
        for connector in self.connectors.values():
            own = FIRMWARE_UPDATE if connector.id in self.flashing else None
            connector.interlock = own or (interlock if connector.contactor_fault is None else None)

    @staticmethod
    def _note_contactor(connector: ConnectorRuntime, io: IoSnapshot) -> None:
        """Welded: until the feedback reads open again. Not closing: until the EV leaves (the
        coil is off by then, so the feedback no longer tells)."""
        seen = io.contactor_faults.get(connector.id)
        fault = faults.CONTACTOR_FAULTS[seen] if seen is not None else None
        previous = connector.contactor_fault
        if fault is None and previous is faults.CONTACTOR_WELDED:
            fault = None if io.contactor_feedback.get(connector.id) is False else previous
        elif fault is None and previous is faults.CONTACTOR_OPEN:
            fault = previous if connector.plugged or connector.session is not None else None
        if fault is not previous:
            log.log(logging.ERROR if fault else logging.INFO, "connector %s: contactor %s", connector.id,
                    fault.info if fault else "feedback follows its coil again")
        connector.contactor_fault = fault

    def _end_sessions_for_fault(self) -> None:
        """End the sessions in the background (the guard opened the contactors): ending one
        waits for the meter to show zero power so meterStop is the final register."""
        reason = StopReason.EMERGENCY_STOP if self.station_fault is ESTOP else StopReason.OTHER
        for connector in self.connectors.values():
            connector.pending = None
            connector.allocated_w = 0.0
            if connector.session is not None and not connector.stopping:
                connector.stopping = True
                self.requests.spawn(self.control.stop(connector, reason, immediate=True))

    async def _follow_evs(self) -> None:
        timeout_s = self.ocpp.connection_timeout_s
        for connector in self.connectors.values():
            if connector.pending is not None and connector.pending.expired(timeout_s):
                log.info("connector %s: start timed out (ConnectionTimeOut %g s)", connector.id, timeout_s)
                connector.pending = None
                connector.finishing = connector.plugged  # OCPP B6: the cable stays in -> Finishing
            if connector.controller_fault is None and not connector.plugged:
                connector.finishing = False
            reason = self._end_reason(connector)
            if reason is not None:
                connector.stopping = True
                # The EV left, or its cable lock failed (the plug may come out): ramp down first.
                immediate = (reason is not StopReason.EV_DISCONNECTED
                             and connector.fault is not faults.LOCK_FAILURE)
                self.requests.spawn(self.control.stop(connector, reason, immediate=immediate))
        card = self.requests.pending_card
        if card is not None and card.expired(timeout_s):
            self.requests.pending_card = None

    def _end_reason(self, connector: ConnectorRuntime) -> StopReason | None:
        """Why a running session must end now: the EV left (unless the session waits for it,
        ocpp_rules.py), or a fault of its own (controller lost or failing, contactor, insulation:
        open at once)."""
        if connector.session is None or connector.stopping:
            return None
        if connector.fault is not None:
            log.error("connector %s: %s during a session; stopping it", connector.id, connector.fault.info)
            return StopReason.OTHER
        if connector.plugged or connector.ev_away:
            return None
        if self.ocpp.ev_left_ends_session(connector):
            return StopReason.EV_DISCONNECTED
        connector.ev_away = True
        self.requests.spawn(self.control.ev_left(connector))
        return None

    def _parent_learnt(self, session_id: str, parent_id_tag: str) -> None:
        self.requests.spawn(journal.store_parent(session_id, parent_id_tag))

    async def _share_power(self) -> None:
        """The allocation engine over what is known now, carried out on the hardware
        (workers/smartw/power_control.py)."""
        if self.config.station.meter is not None:
            reading = await self.bus.get(contract.METER, meter="station")
            self.station_meter = reading if reading is not None and _fresh(reading) else None
        limits = await self.limits.read(self.bus, now=utcnow())
        await self.power.apply(self.connectors, self.io, self.station_meter, limits)

    async def _publish(self) -> None:
        availability = self.requests.availability
        station = StationState(
            status=availability.station_status(self.station_fault),
            estop=self.station_fault is ESTOP, io_online=self.station_fault is not IO_OFFLINE,
            operative=availability.settings.station_operative, free_mode=availability.settings.free_mode,
        )
        if _changed(self._published_station, station):
            await self.bus.set(contract.STATION, station)
            await self.bus.publish(contract.STATION_CHANGES, station)
            self._published_station = station
        for connector in self.connectors.values():
            state = connector.snapshot(self.station_fault)
            self.timeline.observe(connector, state)  # queues only: never waits for the database
            if _changed(self._published.get(connector.id), state):
                await self.bus.set(contract.CONNECTOR, state, connector_id=connector.id)
                await self.bus.publish(contract.CONNECTOR_CHANGES, state)
                self._published[connector.id] = state


def _fresh(reading: MeterReading) -> bool:
    return (utcnow() - reading.at).total_seconds() <= STATION_METER_FRESH_S


def _changed(old, new) -> bool:
    if old is None:
        return True
    return old.model_dump(exclude={"at"}) != new.model_dump(exclude={"at"})
