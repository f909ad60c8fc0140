"""What `manage.py sim fault|clear|offline|online|list` can do to a simulated device.

Every simulated device (meter, controller, IO module, IMD, power module, RFID reader)
registers one `SimulatedDevice` under the name `sim list` prints. `offline` makes the device
silent on its wire exactly as an unplugged RS485 device is (no answer at all, so the driver
times out); `fault KIND` makes it report one of its own fault kinds the way the real device
does (a status bit, an error register, an alarm input); `clear` removes every fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class UnknownFault(ValueError):
    """The device has no fault of that kind (the message lists the kinds it has)."""


class SimulatedDevice(Protocol):
    name: str  # as `sim list` shows it: 'meter1', 'controller2', 'io', 'imd', 'pm3', 'rfid'...
    fault_kinds: tuple[str, ...]

    def set_online(self, online: bool) -> None:
        """False: the device stops answering on its wire; True: it answers again."""
        ...

    def inject_fault(self, kind: str) -> None:
        """Raise UnknownFault for a kind not in `fault_kinds`."""
        ...

    def clear_faults(self) -> None:
        ...


@dataclass
class FaultState:
    """Reusable bookkeeping for a simulated device's online flag and active faults."""

    name: str
    fault_kinds: tuple[str, ...]
    online: bool = True
    faults: set[str] = field(default_factory=set)

    def set_online(self, online: bool) -> None:
        self.online = online

    def inject_fault(self, kind: str) -> None:
        if kind not in self.fault_kinds:
            known = ", ".join(self.fault_kinds) or "none"
            raise UnknownFault(f"{self.name} has no fault {kind!r} (its faults: {known})")
        self.faults.add(kind)

    def clear_faults(self) -> None:
        self.faults.clear()

    def has(self, kind: str) -> bool:
        return kind in self.faults


class HasFaults:
    """The SimulatedDevice side of a device whose whole fault state is `self._faults`.

    A device that does more when it goes online or gets a fault (settles its outputs, powers
    up again, logs) overrides that method and calls `super()`.
    """

    _faults: FaultState

    @property
    def fault_kinds(self) -> tuple[str, ...]:
        return self._faults.fault_kinds

    @property
    def online(self) -> bool:
        return self._faults.online

    def set_online(self, online: bool) -> None:
        self._faults.set_online(online)

    def inject_fault(self, kind: str) -> None:
        self._faults.inject_fault(kind)

    def clear_faults(self) -> None:
        self._faults.clear_faults()


class CombinedDevice:
    """One device seen through several models: e.g. the IO module's wire (offline, CRC faults:
    workers/sim/modbus_answers.py) and its contacts (welds, watchdog: workers/sim/io_module.py).
    Offline and clear go to every part; a fault goes to the part that has that kind."""

    def __init__(self, name: str, parts: list[SimulatedDevice]) -> None:
        self.name = name
        self.parts = parts

    @property
    def fault_kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(kind for part in self.parts for kind in part.fault_kinds))

    @property
    def online(self) -> bool:
        return all(getattr(part, "online", True) for part in self.parts)

    def set_online(self, online: bool) -> None:
        for part in self.parts:
            part.set_online(online)

    def inject_fault(self, kind: str) -> None:
        for part in self.parts:
            if kind in part.fault_kinds:
                part.inject_fault(kind)
                return
        known = ", ".join(self.fault_kinds) or "none"
        raise UnknownFault(f"{self.name} has no fault {kind!r} (its faults: {known})")

    def clear_faults(self) -> None:
        for part in self.parts:
            part.clear_faults()


class DeviceRegistry:
    """The simulated devices by name, for the sim command. Adding a second device under a
    name already taken combines them (one physical device, several models)."""

    def __init__(self) -> None:
        self._devices: dict[str, SimulatedDevice] = {}

    def add(self, device: SimulatedDevice) -> None:
        known = self._devices.get(device.name)
        if known is None:
            self._devices[device.name] = device
        elif isinstance(known, CombinedDevice):
            known.parts.append(device)
        else:
            self._devices[device.name] = CombinedDevice(device.name, [known, device])

    def get(self, name: str) -> SimulatedDevice | None:
        return self._devices.get(name)

    def names(self) -> list[str]:
        return sorted(self._devices)

    def describe(self) -> list[tuple[str, bool, tuple[str, ...]]]:
        """(name, online, fault kinds) of every device, for `sim list`."""
        return [(name, getattr(device, "online", True), device.fault_kinds)
                for name, device in sorted(self._devices.items())]
