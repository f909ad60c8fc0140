"""What every charge-controller driver offers smartw, whatever its wire protocol.

A connector's controller is picked by `connectors[].controller.model` in station.toml
(registry.py). smartw sees only this module's types, so a vendor controller whose protocol is
not public (Ilontech's) plugs in as one more driver module that fills the same snapshot and
answers the same commands.

The snapshot's first five fields are the walking skeleton's (smartw's session logic uses
them); the rest describe the session in detail for diagnostics, the HMI and OCPP.

Leases (safety invariant 4): every output command takes an optional `lease_s`, the time the
command holds without being written again. A controller that can hold a lease drops its
output to zero when it runs out (a dead station or a lost bus leaves the output off); `None`
or 0 sends no lease (the behaviour before leases). Models without a lease register accept the
argument and say in their module how the lease is approximated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntFlag, StrEnum
from typing import Protocol

from bus.enums import Standard


class EvState(StrEnum):
    """What the EV asks for, in IEC 61851 letters (coarse on purpose: smartw's session
    logic needs only this)."""

    A = "A"  # no EV
    B = "B"  # EV connected, not asking for energy (full, paused, session over)
    C = "C"  # EV connected and asking for energy (or presumed to: see docs/controller-protocol.md)
    F = "F"  # controller or EV error


class SessionPhase(StrEnum):
    """Where the charging session is: the phases every standard shares (the per-standard
    sequences map onto these, docs/controller-protocol.md)."""

    IDLE = "idle"  # no EV
    PLUGGED = "plugged"  # EV connected, nothing offered yet (waiting for the station)
    HANDSHAKE = "handshake"  # communication set-up and authorisation (SLAC/SessionSetup, CAN wake-up, PWM on)
    PARAMETER_EXCHANGE = "parameter_exchange"  # EV and EVSE limits (ChargeParameterDiscovery, BCP/CML...)
    CABLE_CHECK = "cable_check"  # insulation test of the DC output
    PRECHARGE = "precharge"  # output brought to the battery voltage before the contactors close
    CHARGING = "charging"  # energy flows (or may flow) as the EV demands
    PAUSED_BY_EV = "paused_by_ev"  # the EV takes no energy for now, the session goes on
    STOPPING = "stopping"  # current ramps down to zero
    WELDING_DETECTION = "welding_detection"  # the EV checks its contactors opened
    FINISHED = "finished"  # session over, EV still connected
    FAULT = "fault"  # stopped by an error (see `errors`)


class ControllerError(IntFlag):
    """Typed error flags; the bit positions are the `error_flags` register of the station
    protocol (docs/controller-protocol.md), other drivers translate their vendor bits."""

    EV_COMMUNICATION = 1 << 0  # EV communication lost (PLC/CAN silent, CP signal lost)
    INSULATION = 1 << 1  # insulation fault (cable check or the IMD during charging)
    OVERTEMPERATURE = 1 << 2  # connector, cable or controller too hot
    DIODE = 1 << 3  # no diode in the EV's control pilot circuit
    CONTROL_PILOT = 1 << 4  # invalid CP level (state E, short)
    PROXIMITY = 1 << 5  # invalid PP value or cable rejected
    CONTACTOR = 1 << 6  # contactor fault or welded contactor (welding detection)
    LOCK = 1 << 7  # connector lock or unlock failed
    RESIDUAL_CURRENT = 1 << 8  # RCD/RCM tripped or its self-test failed
    PRECHARGE = 1 << 9  # output did not reach the battery voltage in time
    EV_FAULT = 1 << 10  # the EV reported a fault or refused the charger (state D, shifter...)
    INCOMPATIBLE = 1 << 11  # EV's voltage/current range outside the charger's
    SEQUENCE_TIMEOUT = 1 << 12  # a session step did not finish in its time limit
    OVERVOLTAGE = 1 << 13
    UNAVAILABLE = 1 << 14  # station made unavailable (IEC 61851 state F)
    INTERNAL = 1 << 15  # controller internal error


NO_ERRORS = ControllerError(0)


class LeaseState(StrEnum):
    """The controller's view of the station's lease on its output commands."""

    NONE = "none"  # no lease: commands hold until written again
    RUNNING = "running"  # the last command holds until its lease runs out
    EXPIRED = "expired"  # no command in time: output dropped to zero, enable cleared


@dataclass(frozen=True)
class EvDemand:
    """What the EV asks for; None = the controller does not know (e.g. AC without HLC).
    DC: target voltage/current of the current demand, and the EV's maximum voltage/current.
    AC: only `max_current_a` (per phase) is meaningful."""

    target_voltage_v: float | None = None
    target_current_a: float | None = None
    max_voltage_v: float | None = None
    max_current_a: float | None = None


@dataclass(frozen=True)
class OutputMeasurement:
    """Voltage and current at the controller's output; None = it does not measure them."""

    voltage_v: float | None = None
    current_a: float | None = None


@dataclass(frozen=True)
class ControllerSnapshot:
    ev_state: EvState
    soc: float | None  # %, None = unknown (AC)
    target_soc: float | None  # %, None = unknown
    ev_max_power_w: float  # what the EV can take now, W
    error_code: int  # 0 = none, else the vendor's code (OCPP vendorErrorCode)
    phase: SessionPhase = SessionPhase.IDLE
    standard: Standard | None = None  # of the EV's session; None without an EV
    demand: EvDemand = field(default_factory=EvDemand)
    present: OutputMeasurement = field(default_factory=OutputMeasurement)
    errors: ControllerError = NO_ERRORS
    firmware_version: str | None = None  # read once (slow data), None until known
    lease: LeaseState | None = None  # None = the controller cannot hold a lease


@dataclass(frozen=True)
class OutputLimits:
    """Most the controller may deliver; None = no limit of that kind from the station.
    A limit a controller cannot apply (a voltage limit on AC) is ignored by its driver."""

    power_w: float | None = None
    current_a: float | None = None
    voltage_v: float | None = None

    def __post_init__(self) -> None:
        for name in ("power_w", "current_a", "voltage_v"):
            value = getattr(self, name)
            if value is not None and not (value >= 0 and not math.isnan(value)):
                raise ValueError(f"{name} limit must be >= 0, got {value}")


class UnsupportedCommand(Exception):
    """The controller model has no such command (e.g. no bootloader entry over its bus)."""


class ChargeController(Protocol):
    """One connector's charge controller. Every method raises DeviceError when the device
    does not answer or answers with values outside its protocol."""

    model: str

    async def poll(self) -> ControllerSnapshot:
        """Read the fast data (state, phase, demand, errors) in the fewest transactions."""
        ...

    async def set_output(self, enabled: bool, power_limit_w: float, *, lease_s: float | None = None) -> None:
        """smartw's one call per cycle: offer energy up to `power_limit_w`, or stop offering;
        with `lease_s`, the offer holds only that long unless written again."""
        ...

    async def set_enabled(self, enabled: bool, *, lease_s: float | None = None) -> None:
        """Enable (authorise) or disable the output, keeping the limits."""
        ...

    async def set_limits(self, limits: OutputLimits, *, lease_s: float | None = None) -> None:
        """Current, voltage and power limits, kept until changed (or the lease runs out)."""
        ...

    async def read_firmware_version(self) -> str:
        """Read the firmware version now (the snapshot carries the last one read)."""
        ...

    async def enter_bootloader(self) -> None:
        """Restart into the bootloader for a firmware update; UnsupportedCommand if the
        model cannot."""
        ...
