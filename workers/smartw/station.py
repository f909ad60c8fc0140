"""One control cycle of the whole station: read devices, enforce safety, share power, publish.

The cycle runs every IO poll period, so e-stop or a lost IO module opens every contactor
within one period (safety invariant 2).
"""

from __future__ import annotations

import logging
import time

from bus import Bus, contract
from bus.enums import ConnectorStatus, StopReason
from bus.messages import ConnectorState, StationState
from workers.common.device_status import DeviceStatusPublisher
from workers.common.station_config import StationConfig
from workers.drivers.controller import EvState
from workers.smartw.allocation import PowerRequest, allocate
from workers.smartw.connector import ConnectorRuntime
from workers.smartw.hardware import HardwareError, StationHardware
from workers.smartw.requests import Requests
from workers.smartw.sessions import SessionControl
from workers.smartw.status import CONTROLLER_ERROR, CONTROLLER_OFFLINE, ESTOP, IO_OFFLINE, Fault
from workers.smartw.timeline import SessionTimeline

log = logging.getLogger(__name__)

IO_DEVICE = "io"
IMD_DEVICE = "imd"


class StationLogic:
    def __init__(self, config: StationConfig, bus: Bus, hardware: StationHardware) -> None:
        self.config = config
        self.bus = bus
        self.hardware = hardware
        self.connectors = {c.id: ConnectorRuntime(c) for c in config.connectors}
        self.timeline = SessionTimeline()
        self.control = SessionControl(bus, hardware, self.blocked_reason, self.timeline)
        self.requests = Requests(bus, self.connectors, self.control)
        self.station_fault: Fault | None = None
        self._published: dict[int, ConnectorState] = {}
        self._published_station: StationState | None = None
        self._controller_due: dict[int, float] = {}
        self._imd_due = 0.0
        self.devices = DeviceStatusPublisher(bus)

    def blocked_reason(self) -> str | None:
        return self.station_fault.info if self.station_fault else None

    async def guard(self) -> None:
        """The safety check, run in its own loop that touches only the hardware: neither a
        slow Redis nor a slow controller can delay opening the contactors on e-stop or a
        lost IO module (safety invariant 2)."""
        previous_fault = self.station_fault
        await self._read_safety_inputs()
        if self.station_fault is not None:
            if self.station_fault is not previous_fault or self.station_fault is ESTOP:
                await self.hardware.open_all(emergency=True)
        elif previous_fault is IO_OFFLINE:
            # Commands sent while the module was lost never arrived: say "open" again.
            await self.hardware.open_all(emergency=False)

    async def cycle(self) -> None:
        """Sessions, power sharing and publishing; the guard has opened everything already
        when the station is faulted."""
        if self.station_fault is not None:
            self._end_sessions_for_fault()
        for connector in self.connectors.values():
            await self._read_connector(connector)
        if self.station_fault is None:
            await self._follow_evs()
            await self._share_power()
        await self._poll_imd()
        await self.devices.flush()
        await self._publish()

    async def _read_safety_inputs(self) -> None:
        io_bus = self.config.io_module.bus
        try:
            estop = await self.hardware.read_estop()
            fault = ESTOP if estop else None
            self.devices.note(IO_DEVICE, bus_name=io_bus)
        except HardwareError as error:
            if self.station_fault is not IO_OFFLINE:
                log.error("IO module lost: %s", error)
            fault = IO_OFFLINE
            self.devices.note(IO_DEVICE, error=str(error), bus_name=io_bus)
        if fault is not self.station_fault:
            log.log(logging.WARNING if fault else logging.INFO, "station fault: %s",
                    fault.info if fault else "cleared")
        self.station_fault = fault

    async def _read_connector(self, connector: ConnectorRuntime) -> None:
        connector.meter = await self.bus.get(contract.METER, meter=f"connector{connector.id}") \
            or connector.meter
        if connector.session is not None and connector.meter is not None:
            connector.session.peak_power_w = max(connector.session.peak_power_w, connector.meter.power_w)
        now = time.monotonic()
        if now < self._controller_due.get(connector.id, 0.0):
            return
        self._controller_due[connector.id] = now + connector.config.controller.poll_s
        device, bus_name = f"controller:{connector.id}", connector.config.controller.bus
        try:
            view = await self.hardware.poll_controller(connector.id)
        except HardwareError as error:
            if connector.controller_fault is not CONTROLLER_OFFLINE:
                log.error("connector %s: controller lost: %s", connector.id, error)
            connector.controller_fault, connector.controller = CONTROLLER_OFFLINE, None
            await self.devices.failed(device, str(error), bus_name=bus_name)
            return
        await self.devices.succeeded(device, bus_name=bus_name,
                                     fault=str(view.error_code) if view.error_code else None)
        was_plugged = connector.plugged
        connector.controller = view
        connector.controller_fault = CONTROLLER_ERROR if view.ev_state is EvState.F else None
        if not was_plugged and connector.plugged:
            connector.finishing = False
            self.requests.spawn(self.requests.ev_plugged(connector))  # a start must not hold the cycle

    async def _poll_imd(self) -> None:
        """The insulation monitor's availability and alarm on the bus, every `[imd].poll_s`
        (smartw's reaction to an insulation fault belongs to the connector logic)."""
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
            fault = "insulation" if snapshot.insulation_fault else (
                "device_error" if snapshot.device_error else None)
            await self.devices.succeeded(IMD_DEVICE, bus_name=imd.bus, fault=fault)

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
        for connector in self.connectors.values():
            if connector.pending is not None and connector.pending.expired:
                log.info("connector %s: start timed out", connector.id)
                connector.pending = None
            if connector.controller_fault is None and not connector.plugged:
                connector.finishing = False
            reason = self._end_reason(connector)
            if reason is not None:
                connector.stopping = True
                immediate = reason is not StopReason.EV_DISCONNECTED
                self.requests.spawn(self.control.stop(connector, reason, immediate=immediate))
        card = self.requests.pending_card
        if card is not None and card.expired:
            self.requests.pending_card = None

    @staticmethod
    def _end_reason(connector: ConnectorRuntime) -> StopReason | None:
        """Why a running session must end now: the EV left, or its controller is lost or
        failing (then nothing controls the current: open at once)."""
        if connector.session is None or connector.stopping:
            return None
        if connector.controller_fault is not None:
            log.error("connector %s: %s during a session; stopping it", connector.id,
                      connector.controller_fault.info)
            return StopReason.OTHER
        return StopReason.EV_DISCONNECTED if not connector.plugged else None

    async def _share_power(self) -> None:
        active = [c for c in self.connectors.values() if c.session is not None and not c.stopping]
        asks = [PowerRequest(c.id, c.config.max_power_kw * 1000,
                             c.controller.ev_max_power_w if c.ev_requesting and c.controller else 0.0)
                for c in active]
        shares = allocate(self.config.station.max_power_kw * 1000, asks)
        # Decreases first, so the sum stays under the station limit while the writes go out.
        for connector in sorted(active, key=lambda c: shares.get(c.id, 0.0) - c.allocated_w):
            share = shares.get(connector.id, 0.0)
            if connector.session is None or connector.stopping:
                continue  # a stop began while the cycle wrote to others: never re-enable it
            try:
                await self.hardware.set_output(connector.id, True, share)
            except HardwareError as error:
                log.error("connector %s: cannot set power limit: %s", connector.id, error)
                continue
            connector.allocated_w = share

    async def _publish(self) -> None:
        station = StationState(
            status=ConnectorStatus.FAULTED if self.station_fault else ConnectorStatus.AVAILABLE,
            estop=self.station_fault is ESTOP, io_online=self.station_fault is not IO_OFFLINE,
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


def _changed(old, new) -> bool:
    if old is None:
        return True
    return old.model_dump(exclude={"at"}) != new.model_dump(exclude={"at"})
