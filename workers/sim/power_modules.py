"""Simulated Infypower DC power modules behind the simulated USB-CAN adapter.

Each module answers the Infypower V1.13 frames (workers/drivers/infypower_frames.py) addressed
to it and behaves as reference/hardware.md §3.2/§3.5 describe: its output ramps toward the
setpoint (hundreds of V/s, tens of A/s), clamped to its rated voltage range, current and power;
it switches itself off when it has heard nothing from the controller for `silence_timeout_s`
(station.toml, the modules' lease: 2 s in simulation, a real module's 10 s by default) and
raises COMM_INTERRUPT until the controller is heard again; status bits show faults.
An unknown command is answered with error code COMMAND_INVALID, a bad payload with
DATA_INVALID; set commands are acknowledged by echoing their payload (a modelling choice).

Fault kinds (`manage.py sim fault pmN KIND`): "overtemp", "fault" and "input_uv" shut the
output down (their alarm bit and PROTECTION); "fan" raises FAN_FAULT and halves the power
limit. Offline: the module neither answers nor hears (so its silence timer runs) and
delivers nothing, as if its supply or its CAN connector were pulled.

The load model, kept simple: while `apply_load(Load(battery_voltage_v, demand_a))` is in
force (the connector's contactor is closed), the battery holds the output terminals at its
voltage, and the current ramps toward min(EV demand, current setpoint, rated current, power
limit / battery voltage), or toward 0 if the module is off or its voltage setpoint is below
the battery's (the output diode blocks). With no load (`apply_load(None)`), the output is an
open circuit: no current, voltage ramps toward the setpoint. The simulated station
(workers/sim/station.py) calls `apply_load` every tick on every module: the EV's share on a
module whose link contactor to the EV's connector conducts, None on the others;
`advance(dt)` moves time (the bank's own ticker does it in the running simulator).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bus.tasks import cancel_and_wait
from workers.common.station_config import PowerModulesConfig
from workers.drivers.infypower_frames import (
    Capabilities,
    Command,
    DeviceNo,
    ErrorCode,
    FrameId,
    Output,
    ProtocolError,
    StatusFlag,
    check_payload,
    decode_on_off,
    decode_set_output,
    device_name,
    encode_capabilities,
    encode_module_count,
    encode_output,
    encode_status,
)
from workers.sim.faults import FaultState, HasFaults
from workers.sim.slcan_adapter import CanFrame

log = logging.getLogger(__name__)

FAULT_KINDS = ("overtemp", "fault", "fan", "input_uv")
_ALARM_BITS = {"overtemp": StatusFlag.OVER_TEMPERATURE, "fault": StatusFlag.FAULT,
               "fan": StatusFlag.FAN_FAULT, "input_uv": StatusFlag.INPUT_UNDER_VOLTAGE}
_SHUTDOWN_FAULTS = frozenset({"overtemp", "fault", "input_uv"})
FAN_FAULT_POWER_FACTOR = 0.5
TICK_S = 0.05


@dataclass(frozen=True)
class ModuleRating:
    max_voltage_v: float = 1000.0
    min_voltage_v: float = 150.0
    max_current_a: float = 100.0
    rated_power_w: float = 30_000.0

    def capabilities(self) -> Capabilities:
        return Capabilities(self.max_voltage_v, self.min_voltage_v, self.max_current_a, self.rated_power_w)


@dataclass(frozen=True)
class Ramp:
    voltage_v_per_s: float = 300.0
    current_a_per_s: float = 30.0


@dataclass(frozen=True)
class Load:
    """What the EV presents at the module's output while the connector's contactor is closed."""

    battery_voltage_v: float
    demand_a: float


class SimulatedPowerModule(HasFaults):
    """One module (a SimulatedDevice named pm1..pmN): its physics, state and status bits."""

    def __init__(self, name: str, address: int, rating: ModuleRating = ModuleRating(), *,
                 silence_timeout_s: float = 10.0, ramp: Ramp = Ramp()) -> None:
        self.name, self.address, self.rating, self.ramp = name, address, rating, ramp
        self.silence_timeout_s = silence_timeout_s
        self._faults = FaultState(name, FAULT_KINDS)
        self.commanded_on = False
        self.set_voltage_v = self.set_current_a = 0.0
        self.voltage_v = self.current_a = 0.0
        self.silent_for_s = 0.0
        self.comm_interrupted = False
        self.power_limited = False
        self.load: Load | None = None

    # --- SimulatedDevice (HasFaults), logged ---------------------------------------------

    def set_online(self, online: bool) -> None:
        super().set_online(online)
        log.info("%s %s", self.name, "online" if online else "offline (silent on CAN)")

    def inject_fault(self, kind: str) -> None:
        super().inject_fault(kind)
        log.info("%s: fault %s", self.name, kind)

    # --- controller side -----------------------------------------------------------------

    def heard(self) -> None:
        """A frame from the controller reached this module: its silence timer restarts."""
        self.silent_for_s = 0.0
        self.comm_interrupted = False

    def switch(self, on: bool) -> None:
        self.commanded_on = on

    def set_output(self, voltage_mv: int, current_ma: int) -> None:
        self.set_voltage_v, self.set_current_a = voltage_mv / 1000, current_ma / 1000

    # --- EV side and time ----------------------------------------------------------------

    def apply_load(self, load: Load | None) -> None:
        """The EV on the output (battery voltage, current it asks for), or None (open circuit)."""
        self.load = load

    @property
    def shut_down(self) -> bool:
        return bool(self._faults.faults & _SHUTDOWN_FAULTS)

    @property
    def delivering(self) -> bool:
        return self.commanded_on and not self.shut_down and self.online

    def available_a(self, battery_voltage_v: float) -> float:
        """The most this module can push into a battery at that voltage now: 0 when it is not
        delivering or its voltage setpoint is below the battery's (the output diode blocks)."""
        if not self.delivering or self._target_voltage_v() < battery_voltage_v:
            return 0.0
        return min(self.set_current_a, self.rating.max_current_a, self._power_limit_a(battery_voltage_v))

    def _power_limit_a(self, battery_voltage_v: float) -> float:
        derating = FAN_FAULT_POWER_FACTOR if "fan" in self._faults.faults else 1.0
        return self.rating.rated_power_w * derating / max(battery_voltage_v, 1.0)

    def advance(self, dt_s: float) -> None:
        self.silent_for_s += dt_s
        if self.commanded_on and self.silent_for_s >= self.silence_timeout_s:
            log.warning("%s: nothing from the controller for %.1f s; output off",
                        self.name, self.silent_for_s)
            self.commanded_on, self.comm_interrupted = False, True
        if self.shut_down:
            self.current_a = 0.0  # a protection trip cuts the output at once
        if self.load is None:
            self._advance_open_circuit(dt_s)
        else:
            self._advance_loaded(self.load, dt_s)

    def _target_voltage_v(self) -> float:
        return min(max(self.set_voltage_v, self.rating.min_voltage_v), self.rating.max_voltage_v)

    def _advance_open_circuit(self, dt_s: float) -> None:
        target_v = self._target_voltage_v() if self.delivering else 0.0
        self.voltage_v = _approach(self.voltage_v, target_v, self.ramp.voltage_v_per_s * dt_s)
        self.current_a, self.power_limited = 0.0, False

    def _advance_loaded(self, load: Load, dt_s: float) -> None:
        self.voltage_v = load.battery_voltage_v
        available_a = self.available_a(load.battery_voltage_v)
        target_a = min(max(load.demand_a, 0.0), available_a)
        by_setting_a = min(self.set_current_a, self.rating.max_current_a)
        self.power_limited = available_a > 0 and available_a < min(by_setting_a, load.demand_a)
        self.current_a = _approach(self.current_a, target_a, self.ramp.current_a_per_s * dt_s)

    def status(self) -> StatusFlag:
        flags = StatusFlag(0)
        for kind in self._faults.faults:
            flags |= _ALARM_BITS[kind]
        if self.shut_down:
            flags |= StatusFlag.PROTECTION
        if not self.delivering:
            flags |= StatusFlag.DC_SIDE_OFF
        if self.comm_interrupted:
            flags |= StatusFlag.COMM_INTERRUPT
        if self.power_limited:
            flags |= StatusFlag.POWER_LIMIT
        return flags


def _approach(value: float, target: float, step: float) -> float:
    if abs(target - value) <= step:
        return target
    return value + step if target > value else value - step


class _CommandInvalid(Exception):
    pass


class PowerModuleBank:
    """The simulated modules on one CAN bus: the slcan adapter's CanNode, and their clock."""

    def __init__(self, modules: Sequence[SimulatedPowerModule], *, bitrate: int = 125_000) -> None:
        self.modules = list(modules)
        self.bitrate = bitrate
        self._by_address = {module.address: module for module in self.modules}
        self._by_name = {module.name: module for module in self.modules}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: PowerModulesConfig, *, ramp: Ramp = Ramp()) -> PowerModuleBank:
        rating = ModuleRating(config.max_voltage_v, config.min_voltage_v, config.max_current_a,
                              config.rated_kw * 1000)
        modules = [SimulatedPowerModule(device_name(position), address, rating,
                                        silence_timeout_s=config.silence_timeout_s, ramp=ramp)
                   for position, address in enumerate(config.module_addresses())]
        return cls(modules, bitrate=config.bitrate)

    def module(self, name: str) -> SimulatedPowerModule:
        return self._by_name[name]

    def advance(self, dt_s: float) -> None:
        for module in self.modules:
            module.advance(dt_s)

    def start(self) -> None:
        """Move the modules' time forward every TICK_S in the running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._tick_forever(), name="power-modules")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def _tick_forever(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            self.advance(now - last)
            last = now

    # --- CanNode -------------------------------------------------------------------------

    def receive(self, frame: CanFrame) -> list[CanFrame]:
        if not frame.extended:
            return []
        try:
            frame_id = FrameId.decode(frame.arbitration_id)
        except ProtocolError:
            return []  # some other device's frame
        module = self._by_address.get(frame_id.destination)
        if module is None or not module.online or frame_id.device is not DeviceNo.SINGLE_MODULE:
            return []
        module.heard()
        try:
            data, error = self._execute(module, frame_id.command, frame.data), ErrorCode.NORMAL
        except _CommandInvalid:
            log.warning("%s: unknown command 0x%02X", module.name, frame_id.command)
            data, error = frame.data, ErrorCode.COMMAND_INVALID
        except ProtocolError as problem:
            log.warning("%s: bad request: %s", module.name, problem)
            data, error = frame.data, ErrorCode.DATA_INVALID
        return [CanFrame(frame_id.answer(error).encode(), data)]

    def _execute(self, module: SimulatedPowerModule, command: int, data: bytes) -> bytes:
        """The answer's payload; ProtocolError for a bad payload, _CommandInvalid for a bad command."""
        if command not in Command._value2member_map_:
            raise _CommandInvalid
        check_payload(data)
        match Command(command):
            case Command.MODULE_COUNT:
                return encode_module_count(len(self.modules))
            case Command.READ_OUTPUT:
                return encode_output(Output(module.voltage_v, module.current_a))
            case Command.STATUS:
                return encode_status(module.status())
            case Command.CAPABILITIES:
                return encode_capabilities(module.rating.capabilities())
            case Command.ON_OFF:
                module.switch(decode_on_off(data))
            case Command.SET_OUTPUT:
                module.set_output(*decode_set_output(data))
        return data
