"""The smartw service: the safety guard, the control cycle (power sharing), cards, start and
stop requests, availability and free mode.

Provides: keys contract.CONNECTOR (per connector), contract.STATION and contract.POWER_MODULE;
streams contract.CONNECTOR_CHANGES, contract.STATION_CHANGES, contract.SESSIONS,
contract.AUTH_RESULTS; commands contract.START, contract.STOP, contract.AVAILABILITY,
contract.FREE_MODE, contract.UNLOCK, contract.UPDATE_HOLD and
contract.FLASH_CONTROLLER (update_hold.py, flashing.py); the ChargingSession, SessionEvent and RuntimeSettings
tables (their only writer).
Requires: stream contract.CARDS (rfid), keys contract.METER (counters), contract.OCPP_LIMIT,
contract.RESERVATIONS, contract.SESSION_RULES, contract.OCPP_TRANSACTION and
contract.OCPP_DEAUTHORIZED (ocpp16) and contract.OPERATOR_LIMIT (webapp), command
contract.AUTHORIZE (ocpp16);
station.toml io_module, connectors, station limits, power_modules with their links, allocation;
the IO module and charge controllers on their buses, the power modules on CAN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bus import Service, contract
from bus.enums import StopReason
from bus.messages import CardPresented, UpdateHoldReply, UpdateHoldRequest, utcnow
from bus.tasks import cancel_and_wait, run_all
from webapp.station.models import ChargingSession
from workers.common.station_config import load_from_settings
from workers.drivers.infypower import InfypowerModules
from workers.smartw import journal
from workers.smartw.flashing import ControllerFlashing
from workers.smartw.modbus_hardware import ModbusStationHardware
from workers.smartw.power_modules import power_modules
from workers.smartw.station import StationLogic
from workers.smartw.unloaded_open import open_unloaded

log = logging.getLogger(__name__)

SHUTDOWN_RAMP_S = 1.0  # on shutdown the meter may be gone already: do not wait long for it
CARD_MAX_AGE_S = 10.0  # a card read while smartw was down must not start a session later
TIMELINE_FLUSH_S = 2.0  # on shutdown, how long the last timeline entries may take to be written


class SmartwService(Service):
    name = "smartw"

    async def run(self) -> None:
        config = load_from_settings()
        hardware = ModbusStationHardware(config)
        modules = power_modules(self.bus, config.power_modules) if config.power_modules else None
        logic = StationLogic(config, self.bus, hardware, power_modules=modules)
        flashing = ControllerFlashing(logic, hardware)
        try:
            await logic.requests.availability.load()  # before the first status is published
            await open_unloaded(hardware, logic.connectors)
            await self._close_orphan_sessions(logic)
            await run_all(
                *([self._power_module_loop(modules)] if modules is not None else []),
                self._guard_loop(logic, config.io_module.poll_s),
                self._control_loop(logic, config.io_module.poll_s),
                self._card_loop(logic),
                self.bus.serve(contract.START, logic.requests.start_command, stop=self.stopping),
                self.bus.serve(contract.STOP, logic.requests.stop_command, stop=self.stopping),
                self.bus.serve(contract.AVAILABILITY, logic.requests.availability.change, stop=self.stopping),
                self.bus.serve(contract.FREE_MODE, logic.requests.availability.set_free_mode,
                               stop=self.stopping),
                self.bus.serve(contract.UNLOCK, logic.locks.unlock_command, stop=self.stopping),
                self.bus.serve(contract.UPDATE_HOLD, lambda request: _update_hold(logic, request),
                               stop=self.stopping),
                # Two servers: a request that comes while a flash runs is answered 'busy' at once.
                *(self.bus.serve(contract.FLASH_CONTROLLER, flashing.flash_command, stop=self.stopping)
                  for _ in range(2)),
            )
        finally:
            await self._shutdown(logic)
            await hardware.close()

    async def _power_module_loop(self, modules: InfypowerModules) -> None:
        """The CAN driver until smartw stops (it then switches every module off); a crash of
        the driver (e.g. Redis lost while publishing) ends smartw's run like any other loop."""
        driver = asyncio.create_task(modules.run(), name="smartw.power_modules")
        stopping = asyncio.create_task(self.stopping.wait())
        try:
            await asyncio.wait({driver, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if driver.done():
                driver.result()
        finally:
            await cancel_and_wait([driver, stopping])

    async def _guard_loop(self, logic: StationLogic, period_s: float) -> None:
        """At a fixed rate: the time a poll takes comes out of the wait, so an input change is
        seen within one period (safety invariant 2)."""
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            started = loop.time()
            await logic.guard()
            await self.sleep(max(period_s - (loop.time() - started), 0.0))

    async def _control_loop(self, logic: StationLogic, period_s: float) -> None:
        """Every period, and at once when a session starts or begins to end (`logic.wake`), so a
        new EV gets its share and a leaving one's power goes to the others without waiting."""
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            started = loop.time()
            logic.wake.clear()
            await logic.cycle()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(logic.wake.wait(), max(period_s - (loop.time() - started), 0.0))

    async def _card_loop(self, logic: StationLogic) -> None:
        async for delivery in self.bus.consume(contract.CARDS, "smartw", "smartw", block_ms=500):
            if self.stopping.is_set():
                return
            if delivery is None:
                continue
            card: CardPresented = delivery.message
            if (utcnow() - card.at).total_seconds() <= CARD_MAX_AGE_S:
                await logic.requests.card(card.uid)
            else:
                log.warning("ignoring card %s read %s ago", card.uid, utcnow() - card.at)
            await delivery.ack()

    async def _shutdown(self, logic: StationLogic) -> None:
        """Stopping smartw leaves the hardware safe first, then ends running sessions (reason
        Reboot); a failure to record one (Redis gone) does not keep the others open."""
        await open_unloaded(logic.hardware, logic.connectors)
        await logic.requests.drain()
        for connector in logic.connectors.values():
            if connector.session is None:
                continue
            try:
                await logic.control.stop(connector, StopReason.REBOOT, immediate=True,
                                         ramp_timeout_s=SHUTDOWN_RAMP_S)
            except Exception:
                log.exception("connector %s: session not recorded as stopped", connector.id)
        await logic.locks.release_all()  # a stopped station holds no cable
        await logic.timeline.aclose(TIMELINE_FLUSH_S)

    async def _close_orphan_sessions(self, logic: StationLogic) -> None:
        """Sessions left open by a crash or power cut: the contactors are open now (open_all),
        so end them at the meter's register (after a power cut Redis is empty: wait for
        counters' first reading) and tell ocpp16. Events a crash left unsent go out first."""
        await journal.republish_unconfirmed(self.bus)
        async for row in ChargingSession.objects.filter(stopped_at__isnull=True):
            connector = logic.connectors.get(row.connector_id)
            reading = await logic.control.fresh_meter(connector) if connector else None
            if reading is None:
                log.error("session %s: no meter reading; closing it at its start register", row.session_id)
            meter_stop = max(reading.energy_wh if reading else row.meter_start_wh, row.meter_start_wh)
            await ChargingSession.objects.filter(pk=row.pk).aupdate(
                stopped_at=utcnow(), meter_stop_wh=meter_stop,
                energy_wh=meter_stop - row.meter_start_wh, stop_reason=StopReason.POWER_LOSS.value)
            closed = await ChargingSession.objects.aget(pk=row.pk)
            logic.timeline.stopped(closed)
            await journal.publish_stopped(self.bus, closed)
            log.warning("session %s on connector %s was left open; closed with PowerLoss",
                        row.session_id, row.connector_id)


async def _update_hold(logic: StationLogic, request: UpdateHoldRequest) -> UpdateHoldReply:
    """Grant, renew or release the update hold; the connectors show it at once."""
    charging = [c.id for c in logic.connectors.values() if c.session is not None or c.stopping]
    reply = logic.update_hold.request(request, charging)
    logic.note_interlocks()
    return reply
