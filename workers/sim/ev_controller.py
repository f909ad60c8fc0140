"""A connector's simulated charge controller: runs the plugged EV's session and answers on
the wire as the configured controller model does (ev_controller_wire.py).

It is what the station's driver talks to and what `manage.py sim` acts on: plug/unplug,
EV-side pause/resume, and (as a `SimulatedDevice` named `controller<N>`) faults and going
offline. EV faults (diode_fail on Type 2; insulation and welding on DC; overtemp, comm_loss)
act where the standard would notice them; `internal` is the controller's own failure.
Clearing faults restarts the session from plug-in, as a controller reset would.
Its bootloader's faults come the same way: `flash_crc` refuses a packet (bad CRC) in each of
the next FLASH_CRC_UPLOADS uploads, `flash_fail` in every upload until cleared.
A station-protocol controller holds the station's lease (ev_controller_lease.py): when the
station stops writing, `enable` and the power limit drop to zero and the session stops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bus.enums import Standard
from workers.common.station_config import ConnectorConfig
from workers.drivers.controllers.interface import (
    NO_ERRORS,
    ControllerError,
    ControllerSnapshot,
    EvState,
    OutputLimits,
    SessionPhase,
)
from workers.drivers.controllers.registry import controller_model
from workers.sim.controller_bootloader import BootloaderFaults, ControllerBootloader
from workers.sim.ev import SimulatedEv
from workers.sim.ev_controller_lease import OutputLease
from workers.sim.ev_controller_wire import RegisterMap, register_map
from workers.sim.ev_sessions import SIM_TIME_SCALE, EvFault, EvSession, Offer, SessionView, new_session
from workers.sim.faults import FaultState, UnknownFault

log = logging.getLogger(__name__)

INTERNAL = "internal"  # the controller's own fault kind
SAFE_VOLTAGE_V = 60.0  # above this the output counts as energised (CABLECHECK_SAFE_VOLTAGE)
FIRMWARE = (1, 0, 0)
FLASH_CRC = "flash_crc"
FLASH_FAIL = "flash_fail"
FLASH_FAULTS = (FLASH_CRC, FLASH_FAIL)
FLASH_CRC_UPLOADS = 2  # with the flasher's usual 3 attempts, the third succeeds
_EVERY_UPLOAD = 1 << 31
_AC_FAULTS = (EvFault.DIODE_FAIL, EvFault.OVERTEMP, EvFault.COMM_LOSS)
_DC_FAULTS = (EvFault.INSULATION, EvFault.OVERTEMP, EvFault.COMM_LOSS, EvFault.WELDING)


class PlugError(ValueError):
    """A plug, unplug, pause or resume the connector cannot do now; the message is a reason key."""


@dataclass
class StationCommand:
    """What the station last wrote: enable and limits (the model's registers decode into it)."""

    enabled: bool = False
    limits: OutputLimits = field(default_factory=lambda: OutputLimits(power_w=0.0))
    available: bool = True  # Phoenix coil 20001; False = IEC 61851 state F


class SimulatedController:
    def __init__(self, connector: ConnectorConfig, *, time_scale: float = SIM_TIME_SCALE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        controller_model(connector)  # refuses a model unfit for the connector's standard
        self.connector = connector
        self.name = f"controller{connector.id}"
        kinds = _AC_FAULTS if connector.standard is Standard.TYPE2 else _DC_FAULTS
        self._session_faults = FaultState(self.name, (*(kind.value for kind in kinds), INTERNAL))
        self._wire: FaultState | None = None
        self.fault_kinds: tuple[str, ...] = (*self._session_faults.fault_kinds, *FLASH_FAULTS)
        self.time_scale = time_scale
        self.session: EvSession | None = None
        self.command = StationCommand()
        self.lease = OutputLease(clock)
        self.in_bootloader = False
        self.firmware = FIRMWARE
        self.bootloader = ControllerBootloader()
        self.wire: RegisterMap = register_map(self)

    # ---- SimulatedDevice ---------------------------------------------------------

    def use_wire_switch(self, switch: FaultState | None) -> None:
        """The bus's switch for this device id (workers/sim/modbus_answers.py): going offline
        and the wire faults act there, so `controller<N>` is one device for `sim list`."""
        self._wire = switch
        self.fault_kinds = (*self._session_faults.fault_kinds, *FLASH_FAULTS,
                            *(switch.fault_kinds if switch else ()))

    @property
    def online(self) -> bool:
        return (self._wire or self._session_faults).online

    @property
    def answers_itself(self) -> bool:
        """False: offline with no wire switch to silence it, so its port must answer 0x0B."""
        return self._wire is not None or self._session_faults.online

    def set_online(self, online: bool) -> None:
        (self._wire or self._session_faults).set_online(online)

    def inject_fault(self, kind: str) -> None:
        if kind not in self.fault_kinds:
            known = ", ".join(self.fault_kinds)
            raise UnknownFault(f"{self.name} has no fault {kind!r} (its faults: {known})")
        if kind in FLASH_FAULTS:
            spoiled = FLASH_CRC_UPLOADS if kind == FLASH_CRC else _EVERY_UPLOAD
            self.bootloader.faults = BootloaderFaults(failed_uploads=self.bootloader.uploads + spoiled)
            return
        wire = self._wire
        (wire if wire is not None and kind in wire.fault_kinds else self._session_faults).inject_fault(kind)

    def clear_faults(self) -> None:
        if self._wire is not None:
            self._wire.clear_faults()
        self.bootloader.faults = BootloaderFaults()
        had_faults = bool(self._session_faults.faults)
        self._session_faults.clear_faults()
        if had_faults:
            self._restart_session()

    # ---- what `manage.py sim` does -------------------------------------------------

    @property
    def ev(self) -> SimulatedEv | None:
        return self.session.ev if self.session else None

    def accepts(self, standard: Standard) -> bool:
        """One plug type per connector: an EV of another standard does not fit."""
        return standard is self.connector.standard

    def plug(self, ev: SimulatedEv, standard: Standard | None = None) -> None:
        standard = standard or self.connector.standard
        if self.session is not None:
            raise PlugError("already_plugged")
        if not self.accepts(standard):
            raise PlugError("standard_not_supported")
        self.session = self._new_session(standard, ev)

    def unplug(self) -> None:
        if self.session is None:
            raise PlugError("not_plugged")
        self.session = None

    def set_paused(self, paused: bool) -> None:
        ev = self.ev
        if ev is None:
            raise PlugError("not_plugged")
        if ev.paused == paused:
            raise PlugError("already_paused" if paused else "not_paused")
        ev.paused = paused

    # ---- commands arriving on the wire ---------------------------------------------

    def enter_bootloader(self) -> bool:
        """False (refused) while the output is energised or authorised."""
        if self.energised():
            return False
        self.in_bootloader = True
        self.bootloader.restart()
        self.command = StationCommand()  # volatile settings are lost with the application
        self.lease = OutputLease(self.lease.clock)
        return True

    def leave_bootloader(self) -> None:
        """The application starts with the firmware the bootloader installed, if it starts."""
        firmware = self.bootloader.start_application(self.firmware)
        if firmware is None:
            return
        self.firmware = firmware
        self.in_bootloader = False
        self._restart_session()

    def _restart_session(self) -> None:
        if self.session is not None:
            self.session = self._new_session(self.session.standard, self.session.ev)

    def _new_session(self, standard: Standard, ev: SimulatedEv) -> EvSession:
        """A Phoenix controller's supply is its configured phases and voltage (as its driver's)."""
        controller = self.connector.controller
        if controller.model == "phoenix_ev_cc":
            options = controller.phoenix_options
            return new_session(standard, ev, time_scale=self.time_scale, ac_phases=options.phases,
                               ac_voltage_v=options.voltage_v)
        return new_session(standard, ev, time_scale=self.time_scale)

    # ---- physics -----------------------------------------------------------------

    def step(self, *, live: bool, dt_s: float, supply_a: float | None = None) -> float:
        """Move the session on; `live` = the contactor is closed (and e-stop released);
        `supply_a` = what the power modules feeding the output deliver now (None: the
        controller powers its EV itself). Returns the power delivered, W."""
        self._expire_lease()
        if self.session is None:
            return 0.0
        halted = self.in_bootloader or self._session_faults.has(INTERNAL) or not self.command.available
        limits = self.command.limits
        if supply_a is not None and (limits.current_a is None or supply_a < limits.current_a):
            limits = replace(limits, current_a=supply_a)
        offer = Offer(enabled=self.command.enabled and not halted, live=live and not halted, limits=limits)
        faults = frozenset(EvFault(kind) for kind in self._session_faults.faults if kind != INTERNAL)
        self.session.step(offer, faults, dt_s)
        return self.session.view().power_w

    def _expire_lease(self) -> None:
        """No command within the lease: the offer falls to zero (the session stops as on a
        station's stop) and stays there until the station writes `enable` again."""
        if not self.lease.runs_out():
            return
        log.warning("%s: no command from the station within its %s s lease; output to zero",
                    self.name, self.lease.duration_s)
        self.command.enabled = False
        self.command.limits = replace(self.command.limits, power_w=0.0)

    def view(self) -> SessionView | None:
        return self.session.view() if self.session else None

    def controller_errors(self) -> ControllerError:
        """Errors of the controller itself (not of the session)."""
        errors = ControllerError.INTERNAL if self._session_faults.has(INTERNAL) else NO_ERRORS
        return errors if self.command.available else errors | ControllerError.UNAVAILABLE

    def energised(self) -> bool:
        view = self.view()
        if view is None:
            return False
        present = view.present
        return (self.command.enabled or (present.current_a or 0.0) > 0
                or (present.voltage_v or 0.0) > SAFE_VOLTAGE_V)

    def snapshot(self) -> ControllerSnapshot:
        """The station protocol's view of this controller (firmware is in the identity block)."""
        view, own = self.view(), self.controller_errors()  # vendor code: the simulator uses the flag word
        if view is None:
            state, phase = (EvState.F, SessionPhase.FAULT) if own else (EvState.A, SessionPhase.IDLE)
            return ControllerSnapshot(state, None, None, 0.0, int(own), phase=phase, errors=own,
                                      lease=self.lease.state())
        errors = view.errors | own
        faulted = bool(errors)
        return ControllerSnapshot(
            ev_state=EvState.F if faulted else view.ev_state, soc=view.soc, target_soc=view.target_soc,
            ev_max_power_w=0.0 if faulted else view.ev_max_power_w, error_code=int(errors),
            phase=SessionPhase.FAULT if faulted else view.phase, standard=view.standard,
            demand=view.demand, present=view.present, errors=errors, lease=self.lease.state(),
        )
