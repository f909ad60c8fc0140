"""The seam between smartw's logic and the station's devices.

smartw's logic talks to `StationHardware`; `workers.smartw.modbus_hardware` implements it
with the drivers in workers/drivers (the same code runs against the simulator and real
devices: the simulator speaks the same wire protocols). Every device failure surfaces as
`HardwareError`, so the logic handles one error type.
"""

from __future__ import annotations

from typing import Protocol

from workers.drivers.controller import ControllerSnapshot
from workers.drivers.imd import ImdSnapshot
from workers.drivers.io_module import IoSnapshot

# An offer of energy holds this long unless smartw's cycle (every IO poll period) renews it, so
# a dead or hung smartw, or a lost bus, leaves every controller without output (safety
# invariant 4). Controllers without a lease register ignore it (docs/controller-protocol.md).
OUTPUT_LEASE_S = 2.0


class HardwareError(Exception):
    """A device did not answer or refused a command."""


class StationHardware(Protocol):
    async def read_io(self) -> IoSnapshot:
        """Every IO input (e-stop, door, IMD alarm, contactor feedback and its faults, fans) in
        one poll. Raises HardwareError if the IO module is lost."""
        ...

    async def poll_imd(self) -> ImdSnapshot | None:
        """The insulation monitor's reading; None on a station without `[imd]`."""
        ...

    async def set_contactor(self, connector_id: int, closed: bool) -> None:
        """Close or open a connector's contactor through the IO module."""
        ...

    async def set_lock(self, connector_id: int, locked: bool) -> None:
        """Drive a Type 2 socket's cable lock coil (its position switch comes with read_io); only
        for connectors station.toml gives a lock (workers/smartw/cable_lock.py)."""
        ...

    async def set_link(self, module: str, connector_id: int, closed: bool) -> None:
        """Close or open the link contactor between a power module (pm1..pmN) and a DC
        connector (`[[power_modules.links]]`) through the IO module. The caller ramps the
        module's current to zero first (safety invariant 3)."""
        ...

    async def poll_controller(self, connector_id: int) -> ControllerSnapshot:
        """Read the connector's charge controller."""
        ...

    async def set_output(self, connector_id: int, enabled: bool, power_limit_w: float) -> None:
        """Tell the controller whether energy is offered, and how much at most."""
        ...

    async def open_all(self, *, emergency: bool) -> None:
        """Safe state: every controller disabled, every contactor and module link open (best
        effort, never raises). `emergency` opens the contactors and links first; otherwise the
        controllers go to zero first so no contactor opens under load."""
        ...

    async def close(self) -> None:
        ...
