"""smartw's DC power modules: the CAN driver running, every reading on the bus.

The modules belong to smartw (ARCHITECTURE.md): it alone sets their output. Until the
allocation of modules to connectors exists, smartw keeps them in the safe state the driver
starts in (off, 0 V, 0 A), re-sent so a module that power-cycles stays off, and publishes what
each module measures (contract.POWER_MODULE, with a TTL so a silent module's last value
expires) and its availability (contract.DEVICE, by the driver).

On a station fault the guard switches every module off through `ModuleSwitch` alone: the
driver's own CAN calls, no Redis in the way (safety invariant 2).
"""

from __future__ import annotations

from typing import Protocol

from bus import Bus, contract
from bus.messages import PowerModuleReading
from workers.common.device_status import DeviceStatusPublisher
from workers.common.station_config import PowerModulesConfig
from workers.drivers.infypower import InfypowerModules, ModuleReading

STALE_AFTER_POLLS = 3


class ModuleSwitch(Protocol):
    """What the safety guard needs of the power modules (InfypowerModules has it)."""

    async def switch_all_off(self) -> None:
        """Every module off and to 0 V / 0 A (best effort: unreachable modules are logged)."""
        ...


def reading_message(reading: ModuleReading) -> PowerModuleReading:
    return PowerModuleReading(module=reading.name, address=reading.address, voltage_v=reading.voltage_v,
                              current_a=reading.current_a, output_on=reading.output_on,
                              status=[flag.name for flag in reading.status if flag.name],
                              fault=reading.fault)


def power_modules(bus: Bus, config: PowerModulesConfig) -> InfypowerModules:
    """The driver for `[power_modules]`, publishing each reading as it arrives."""
    ttl_s = max(STALE_AFTER_POLLS * config.poll_s, 1.0)

    async def publish(reading: ModuleReading) -> None:
        await bus.set(contract.POWER_MODULE, reading_message(reading), ttl_s=ttl_s, module=reading.name)

    return InfypowerModules.from_config(config, DeviceStatusPublisher(bus), on_reading=publish)
