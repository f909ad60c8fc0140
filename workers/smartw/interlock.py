"""The hardware as smartw's sessions see it, behind the station-wide start interlock.

Why its own layer: the interlock (a welded contactor anywhere, a fault, a cable lock not
locked) must be checked right where the contactor closes, so no start can slip between the
guard's check and its own; every other call goes straight to the hardware.
"""

from __future__ import annotations

from collections.abc import Callable

from workers.drivers.controller import ControllerSnapshot
from workers.drivers.imd import ImdSnapshot
from workers.drivers.io_module import IoSnapshot
from workers.smartw.cable_lock import CableLocks
from workers.smartw.hardware import StationHardware
from workers.smartw.sessions import StartRefused


class ContactorInterlock:
    """The hardware as SessionControl sees it: a contactor closes only while `refusal` has
    nothing against it, checked right before the command goes out (StartRefused otherwise), and
    on a Type 2 socket only once its cable lock reads locked (workers/smartw/cable_lock.py)."""

    def __init__(self, hardware: StationHardware, refusal: Callable[[int], str | None],
                 locks: CableLocks | None = None) -> None:
        self._hardware = hardware
        self._refusal = refusal
        self._locks = locks

    async def read_io(self) -> IoSnapshot:
        return await self._hardware.read_io()

    async def poll_imd(self) -> ImdSnapshot | None:
        return await self._hardware.poll_imd()

    async def set_contactor(self, connector_id: int, closed: bool) -> None:
        reason = self._refusal(connector_id) if closed else None
        if closed and reason is None and self._locks is not None:
            await self._locks.lock(connector_id)
            reason = self._refusal(connector_id)  # again: a fault may have come while the lock moved
        if reason is not None:
            raise StartRefused(reason)
        await self._hardware.set_contactor(connector_id, closed)

    async def set_lock(self, connector_id: int, locked: bool) -> None:
        await self._hardware.set_lock(connector_id, locked)

    async def poll_controller(self, connector_id: int) -> ControllerSnapshot:
        return await self._hardware.poll_controller(connector_id)

    async def set_output(self, connector_id: int, enabled: bool, power_limit_w: float) -> None:
        await self._hardware.set_output(connector_id, enabled, power_limit_w)

    async def set_link(self, module: str, connector_id: int, closed: bool) -> None:
        await self._hardware.set_link(module, connector_id, closed)

    async def open_all(self, *, emergency: bool) -> None:
        await self._hardware.open_all(emergency=emergency)

    async def close(self) -> None:
        await self._hardware.close()
