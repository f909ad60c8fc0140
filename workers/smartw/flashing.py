"""contract.FLASH_CONTROLLER: flash one connector's charge controller on request of update_fw.

smartw owns the controllers' RS485 line, so the wire part runs here, on the hub of that
controller's line: the flasher's transactions take turns with the polls of the other devices
there, and the guard and control loops go on (the flash is just another task awaiting the hub).
The connector must be idle; while it flashes it shows Unavailable ('firmware_update'), takes no
session and its controller is neither polled nor commanded. Afterwards its identity is read
again and the version published with its device state (contract.DEVICE), where update_fw
looks to skip a controller already up to date.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bus.messages import FlashControllerReply, FlashControllerRequest
from workers.drivers import controller_flasher
from workers.drivers.controllers.bootloader_protocol import ImageError, parse_image
from workers.drivers.controllers.station_dc import MODEL as BOOTLOADER_MODEL
from workers.drivers.errors import DeviceError
from workers.smartw.connector import ConnectorRuntime
from workers.smartw.modbus_hardware import ModbusStationHardware
from workers.smartw.station import StationLogic

log = logging.getLogger(__name__)


class ControllerFlashing:
    def __init__(self, logic: StationLogic, hardware: ModbusStationHardware) -> None:
        self.logic = logic
        self.hardware = hardware
        self._running: int | None = None  # the connector being flashed: one flash at a time

    async def flash_command(self, request: FlashControllerRequest) -> FlashControllerReply:
        connector = self.logic.connectors.get(request.connector_id)
        if connector is None:
            return _refused("unknown_connector", f"no connector {request.connector_id}")
        if connector.config.controller.model != BOOTLOADER_MODEL:
            return _refused("no_controller", f"a {connector.config.controller.model} controller has "
                            "no bootloader this station can drive")
        try:
            image = await asyncio.to_thread(Path(request.image_path).read_bytes)
            parse_image(image)
        except (OSError, ImageError) as error:
            return _refused("unreadable_image", f"{request.image_path}: {error}")
        async with connector.lock:  # a start in progress finishes (or fails) first
            busy = self._busy_reason(connector)
            if busy:
                return _refused("busy", busy)
            self._running = connector.id
            self.logic.flashing.add(connector.id)
            connector.controller, connector.pending = None, None
            self.logic.note_interlocks()
        try:
            return await self._flash(connector, image, request.attempts)
        finally:
            await self._resume(connector)

    def _busy_reason(self, connector: ConnectorRuntime) -> str | None:
        if self._running is not None:
            return f"connector {self._running}'s controller is being flashed"
        if connector.session is not None or connector.stopping:
            return f"connector {connector.id} has a session"
        return None

    async def _flash(self, connector: ConnectorRuntime, image: bytes, attempts: int) -> FlashControllerReply:
        ref = connector.config.controller
        log.warning("connector %s: flashing its controller (%d bytes, %d attempts)",
                    connector.id, len(image), attempts)
        result = await controller_flasher.flash(self.hardware.hubs[ref.bus], ref.device_id, image, attempts)
        if not result.ok:
            log.error("connector %s: flashing failed: %s (%s)", connector.id, result.error, result.detail)
        return FlashControllerReply(ok=result.ok, attempts_used=result.attempts_used, version=result.version,
                                    error=result.error.value if result.error else None,
                                    detail=result.detail[:1000])

    async def _resume(self, connector: ConnectorRuntime) -> None:
        """Read the controller's identity again (new firmware, maybe a new protocol version),
        publish its version, and give the connector back to the control cycle. A controller
        that does not answer is left to the poll, which marks it lost as usual."""
        device, bus_name = f"controller:{connector.id}", connector.config.controller.bus
        try:
            version = await self.hardware.controllers[connector.id].read_firmware_version()
            await self.logic.devices.succeeded(device, bus_name=bus_name, firmware_version=version)
            log.info("connector %s: controller back with firmware %s", connector.id, version)
        except DeviceError as error:
            log.error("connector %s: controller not back after flashing: %s", connector.id, error)
        finally:
            self.logic.flashing.discard(connector.id)
            self._running = None
            self.logic.note_interlocks()


def _refused(error: str, detail: str) -> FlashControllerReply:
    log.warning("flash request refused: %s (%s)", error, detail)
    return FlashControllerReply(ok=False, attempts_used=0, error=error, detail=detail)
