"""`StationHardware` over the drivers: the IO module (connector contactors and the power
modules' link contactors), the insulation monitor and the charge controllers on Modbus.

The same code drives the simulator and a real cabinet; only station.toml differs.
"""

from __future__ import annotations

import logging

from workers.common.station_config import StationConfig
from workers.drivers.controllers import ControllerSnapshot, build_controller
from workers.drivers.errors import DeviceError
from workers.drivers.imd import Imd, ImdSnapshot
from workers.drivers.io_module import IoModule, IoSnapshot
from workers.drivers.modbus_hub import open_hubs
from workers.smartw.hardware import OUTPUT_LEASE_S, HardwareError

log = logging.getLogger(__name__)



class ModbusStationHardware:
    def __init__(self, config: StationConfig) -> None:
        self.hubs = open_hubs(config)
        self.io = IoModule.from_config(config, self.hubs)
        self.imd = Imd.from_config(config.imd, self.hubs) if config.imd is not None else None
        self.controllers = {c.id: build_controller(self.hubs[c.controller.bus], c) for c in config.connectors}

    async def read_io(self) -> IoSnapshot:
        try:
            return await self.io.poll()
        except DeviceError as error:
            raise HardwareError(str(error)) from error

    async def poll_imd(self) -> ImdSnapshot | None:
        if self.imd is None:
            return None
        try:
            return await self.imd.poll()
        except DeviceError as error:
            raise HardwareError(str(error)) from error

    async def set_contactor(self, connector_id: int, closed: bool) -> None:
        try:
            await self.io.set_contactor(connector_id, closed)
        except DeviceError as error:
            raise HardwareError(str(error)) from error

    async def set_lock(self, connector_id: int, locked: bool) -> None:
        try:
            await self.io.set_lock(connector_id, locked)
        except DeviceError as error:
            raise HardwareError(str(error)) from error

    async def set_link(self, module: str, connector_id: int, closed: bool) -> None:
        try:
            await self.io.set_link(module, connector_id, closed)
        except DeviceError as error:
            raise HardwareError(str(error)) from error

    async def poll_controller(self, connector_id: int) -> ControllerSnapshot:
        try:
            return await self.controllers[connector_id].poll()
        except DeviceError as error:
            raise HardwareError(str(error)) from error

    async def set_output(self, connector_id: int, enabled: bool, power_limit_w: float) -> None:
        try:
            await self.controllers[connector_id].set_output(
                enabled, power_limit_w, lease_s=OUTPUT_LEASE_S if enabled else None)
        except DeviceError as error:
            raise HardwareError(str(error)) from error

    async def open_all(self, *, emergency: bool) -> None:
        steps = (self._open_contactors, self._disable_controllers)
        for step in steps if emergency else reversed(steps):
            await step()

    async def _disable_controllers(self) -> None:
        for connector_id, controller in self.controllers.items():
            try:
                await controller.set_output(False, 0.0)
            except DeviceError as error:
                log.error("connector %s: cannot disable controller: %s", connector_id, error)

    async def _open_contactors(self) -> None:
        """Every connector's contactor and every module link, in one write of the output image."""
        try:
            await self.io.open_all()
        except DeviceError as error:
            log.error("cannot open the contactors and links: %s", error)

    async def close(self) -> None:
        for hub in self.hubs.values():
            await hub.close()
