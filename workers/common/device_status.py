"""Device availability on the bus: one tracker per polled device, published only on change.

Every service that polls hardware (counters: meters; smartw: IO module, controllers, power
modules; rfid: the reader) reports each poll's outcome here. A device is marked unavailable
after `FAILURES_TO_UNAVAILABLE` failed polls in a row, so one corrupted RS485 frame does not
fault a connector but a silent device is flagged within two poll periods; the first good poll
marks it available again. The change is written to contract.DEVICE (latest state) and
appended to contract.DEVICE_CHANGES (the fault event), so smartw, diag and the HMI learn of
it without polling, and a dead device is never shown with its last value as if fresh.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bus import Bus, contract
from bus.messages import DeviceState

log = logging.getLogger(__name__)

FAILURES_TO_UNAVAILABLE = 2


@dataclass
class DeviceHealth:
    """The availability of one device, from its polls' outcomes (pure; no I/O)."""

    device: str
    bus: str = ""
    available: bool = True
    failures_in_row: int = 0
    reason: str = ""
    fault: str | None = None
    firmware_version: str | None = None  # as the device last reported it (kept when a poll does not say)
    announced: bool = False  # the first state is always published

    def succeeded(self, fault: str | None = None, firmware_version: str | None = None) -> bool:
        """A poll answered (with a device-reported `fault`, or None). True if the state changed."""
        new_firmware = firmware_version is not None and firmware_version != self.firmware_version
        changed = not self.available or fault != self.fault or not self.announced or new_firmware
        self.available, self.failures_in_row, self.fault = True, 0, fault
        self.firmware_version = firmware_version or self.firmware_version
        self.reason = f"device reports fault {fault}" if fault else ""
        return changed

    def failed(self, reason: str) -> bool:
        """A poll failed (timeout, CRC, exception answer...). True if the state changed."""
        self.failures_in_row += 1
        if self.failures_in_row < FAILURES_TO_UNAVAILABLE:
            return False
        changed = self.available or not self.announced
        self.available, self.reason = False, reason
        return changed

    def state(self) -> DeviceState:
        return DeviceState(device=self.device, bus=self.bus, available=self.available,
                           reason=self.reason, fault=self.fault, firmware_version=self.firmware_version)


class DeviceStatusPublisher:
    """Publishes a device's state to the bus whenever its health changes."""

    def __init__(self, bus: Bus | None) -> None:
        """`bus=None` keeps the health in memory only (`hw probe` runs without the station)."""
        self._bus = bus
        self._health: dict[str, DeviceHealth] = {}
        self._unpublished: set[str] = set()

    def health(self, device: str, *, bus_name: str = "") -> DeviceHealth:
        if device not in self._health:
            self._health[device] = DeviceHealth(device, bus_name)
        return self._health[device]

    async def succeeded(self, device: str, *, bus_name: str = "", fault: str | None = None,
                        firmware_version: str | None = None) -> None:
        health = self.health(device, bus_name=bus_name)
        was_unavailable = not health.available
        if health.succeeded(fault, firmware_version):
            if was_unavailable:
                log.info("device %s is available again", device)
            await self._publish(health)

    async def failed(self, device: str, reason: str, *, bus_name: str = "") -> None:
        health = self.health(device, bus_name=bus_name)
        if health.failed(reason):
            log.error("device %s is unavailable: %s", device, reason)
            await self._publish(health)

    def note(self, device: str, *, error: str | None = None, bus_name: str = "",
             fault: str | None = None) -> None:
        """Record a poll's outcome without touching Redis (for loops that must never wait on
        it, such as smartw's safety guard); `flush()` publishes the changes later."""
        health = self.health(device, bus_name=bus_name)
        changed = health.failed(error) if error is not None else health.succeeded(fault)
        if changed:
            (log.error if error is not None else log.info)(
                "device %s is %s", device, f"unavailable: {error}" if error is not None else "available")
            self._unpublished.add(device)

    async def flush(self) -> None:
        for device in sorted(self._unpublished):
            await self._publish(self._health[device])
        self._unpublished.clear()

    async def _publish(self, health: DeviceHealth) -> None:
        health.announced = True
        if self._bus is None:
            return
        state = health.state()
        await self._bus.set(contract.DEVICE, state, device=health.device)
        await self._bus.publish(contract.DEVICE_CHANGES, state)
