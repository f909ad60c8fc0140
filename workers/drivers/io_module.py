"""The station's IO module: e-stop, door, IMD alarm and other inputs; contactor coils and their
feedback contacts; cabinet fans. The wiring is data (station.toml `[io_module]`, each
connector's `contactor_coil` / `contactor_feedback`, and the power modules' link contactors
`[[power_modules.links]]`), the module family a layout (workers/drivers/io_layout.py), so an
ICP DAS and an Owen cabinet run the same code. A link contactor is a contactor like a
connector's, keyed by `link_key` ("pm3>1") where a connector's is keyed by its id, so its
read-back, feedback and faults come in the same snapshot maps.

`poll()` reads every input and the outputs' read-back in the fewest requests and returns one
typed snapshot. The driver keeps the desired output image itself and writes from it, never
reading the module to decide what to write. A contactor whose feedback contact has not followed
its coil within `feedback_timeout_s` is reported as a typed fault (welded, or not closing); the
time counts from the coil's last change, whether the driver switched it or the module's host
watchdog dropped it (seen in the read-back), so a watchdog trip is not mistaken for a weld. The
e-stop is wired into the coil circuit (as in the simulator and usual cabinets): while it is
pressed a coil counts as off, so a contactor that opened on e-stop is not "not closing".
A Type 2 socket's cable lock (`lock_coil` / `lock_feedback`) is one more output and input: the
snapshot carries its coil's read-back and its position switch; judging them (in time) is
smartw's (workers/smartw/cable_lock.py). The lock is not in the e-stop's coil circuit.

Host watchdog (the IO module's lease, safety invariant 4): with `watchdog_s`, the first poll
programs the module to drop its outputs when the station has not talked to it that long, so a
dead smartw or a lost bus opens every contactor. ICP DAS map (reference/hardware.md §2.2): each
output's safe value 00129.. = off, timeout 40489 in 0.1 s, then enable 00261; programmed again
after a failed poll (the module may have restarted). Owen MU110: its network timeout and
safe output state are set with Owen's configurator; no public register map confirms them, so
the driver does not program them and says so once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from workers.common.io_config import InputSignal, IoPoint
from workers.common.power_config import link_key
from workers.common.station_config import IoModuleConfig, StationConfig
from workers.drivers.errors import DeviceError
from workers.drivers.io_layout import WireBit, layout_for, plan_reads, read_image
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import FunctionCode

log = logging.getLogger(__name__)

# ICP DAS tM/M-7000 host watchdog, 0-based protocol addresses (manual 00129.., 00261, 40489)
SAFE_VALUE_COIL_BASE = 128  # + output channel: the value the output takes on a watchdog trip
WATCHDOG_ENABLE_COIL = 260
WATCHDOG_TIMEOUT_REGISTER = 40488
WATCHDOG_UNIT_S = 0.1


ContactorKey = int | str  # a connector's id, or a module link's `link_key` ("pm3>1")


class ContactorFault(StrEnum):
    WELDED = "welded"  # the coil is off but the auxiliary contact still reports closed
    NOT_CLOSING = "not_closing"  # the coil is on but the auxiliary contact reports open


@dataclass(frozen=True)
class ContactorWiring:
    coil: int  # output address
    feedback: IoPoint | None = None  # auxiliary contact input (active = closed), if wired


@dataclass(frozen=True)
class IoSnapshot:
    """One poll. An optional signal that station.toml does not wire reads None, not False."""

    estop_pressed: bool
    door_open: bool | None = None
    imd_alarm: bool | None = None
    spd_tripped: bool | None = None
    breaker_tripped: bool | None = None
    fan_alarm: bool | None = None
    fans_on: bool | None = None  # read-back of the fan output(s); None without fans
    contactors_closed: Mapping[ContactorKey, bool] = field(default_factory=dict)  # coil read-back
    contactor_feedback: Mapping[ContactorKey, bool] = field(default_factory=dict)  # those with feedback
    contactor_faults: Mapping[ContactorKey, ContactorFault] = field(default_factory=dict)
    lock_coils: Mapping[int, bool] = field(default_factory=dict)  # connector id -> lock coil read-back (on)
    locks_locked: Mapping[int, bool] = field(default_factory=dict)  # connector id -> position switch
    outputs_as_commanded: bool = True  # False: the module dropped or changed outputs (watchdog, reset)


class IoModule:
    """The IO module(s) behind one hub; `contactors` maps connector id (or link key) -> its wiring."""

    def __init__(self, hub: ModbusHub, config: IoModuleConfig,
                 contactors: Mapping[ContactorKey, ContactorWiring], *,
                 locks: Mapping[int, ContactorWiring] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hub = hub
        self.config = config
        self.contactors = MappingProxyType(dict(contactors))
        self.locks = MappingProxyType(dict(locks or {}))  # connector id -> its cable lock (coil, switch)
        self.layout = layout_for(config)
        self._clock = clock
        self._outputs = {wiring.coil: False for wiring in self.contactors.values()}
        self._outputs |= {wiring.coil: False for wiring in self.locks.values()}
        self._outputs |= dict.fromkeys(config.fans, False)
        # A lock coil goes out with the first write (open_all at smartw's start): a restarted smartw
        # must not leave a cable locked by its predecessor, nor a read-back that differs from the image.
        self._unconfirmed: set[int] = {wiring.coil for wiring in self.locks.values()}
        self._coil_on = dict.fromkeys(self.contactors, False)  # as the contactor sees it (after e-stop)
        self._estop_pressed = False  # as last polled
        self._coil_changed_at = dict.fromkeys(self.contactors, clock())
        self._reads = plan_reads(self._wire_bits())
        self._watchdog_pending = config.watchdog_s is not None

    @classmethod
    def from_config(cls, config: StationConfig, hubs: Mapping[str, ModbusHub]) -> IoModule:
        io = config.io_module
        wiring: dict[ContactorKey, ContactorWiring] = {
            c.id: ContactorWiring(c.contactor_coil, c.contactor_feedback) for c in config.connectors}
        links = config.power_modules.links if config.power_modules is not None else ()
        wiring |= {link.key: ContactorWiring(link.coil, link.feedback) for link in links}
        locks = {c.id: ContactorWiring(c.lock_coil, c.lock_feedback) for c in config.connectors
                 if c.lock_coil is not None}
        return cls(hubs[io.bus], io, wiring, locks=locks)

    @property
    def outputs(self) -> Mapping[int, bool]:
        """The desired output image (address -> on)."""
        return MappingProxyType(self._outputs)

    async def set_contactor(self, connector_id: int, closed: bool) -> None:
        """Switch a connector's contactor coil; KeyError for a connector the module does not drive."""
        await self._switch(connector_id, closed)

    async def set_link(self, module: str, connector_id: int, closed: bool) -> None:
        """Switch the link contactor between a power module and a DC connector; KeyError for a
        link station.toml does not wire."""
        await self._switch(link_key(module, connector_id), closed)

    async def set_lock(self, connector_id: int, locked: bool) -> None:
        """Drive a socket's cable lock coil; KeyError for a connector without a lock."""
        await self._set_outputs({self.locks[connector_id].coil: locked})

    async def open_all(self) -> None:
        """Every contactor and link coil off in one image update (one request per run of
        consecutive coils): a silent module costs one timeout, not one per coil."""
        await self._set_outputs({wiring.coil: False for wiring in self.contactors.values()})
        for key in self.contactors:
            self._note_coil(key, False)

    async def set_fans(self, on: bool) -> None:
        """Switch every fan output (nothing to do on a cabinet without fans)."""
        if self.config.fans:
            await self._set_outputs(dict.fromkeys(self.config.fans, on))

    async def read_coils(self, address: int, count: int = 1) -> list[bool]:
        """Raw coil read (bits layout), for technicians' tools and tests."""
        return await self.hub.read_bits(self.config.device_id, FunctionCode.READ_COILS, address, count)

    async def poll(self) -> IoSnapshot:
        """Every input and the outputs' read-back, in `requests_per_poll` requests (the first
        poll, and the first after a failure, program the host watchdog first)."""
        try:
            if self._watchdog_pending:
                await self.program_watchdog()
            image = await read_image(self.hub, self._reads)
        except DeviceError:
            self._watchdog_pending = self.config.watchdog_s is not None and self.config.layout == "bits"
            raise
        now = self._clock()
        signals = {signal: point.active(image.level(self.layout.input_bit(point.address)))
                   for signal, point in self.config.inputs.wired()}
        self._estop_pressed = signals[InputSignal.ESTOP]
        coils = {key: image.level(self.layout.output_bit(w.coil)) for key, w in self.contactors.items()}
        for key, on in coils.items():
            self._note_coil(key, on and not self._estop_pressed, now)
        feedback = {key: w.feedback.active(image.level(self.layout.input_bit(w.feedback.address)))
                    for key, w in self.contactors.items() if w.feedback is not None}
        faults = {key: fault for key, closed in feedback.items()
                  if (fault := self._feedback_fault(key, closed, now)) is not None}
        read_back = {address: image.level(self.layout.output_bit(address)) for address in self._outputs}
        locks_locked = {cid: w.feedback.active(image.level(self.layout.input_bit(w.feedback.address)))
                        for cid, w in self.locks.items() if w.feedback is not None}
        fans = [read_back[address] for address in self.config.fans]
        return IoSnapshot(
            estop_pressed=self._estop_pressed,
            door_open=signals.get(InputSignal.DOOR),
            imd_alarm=signals.get(InputSignal.IMD_ALARM),
            spd_tripped=signals.get(InputSignal.SPD),
            breaker_tripped=signals.get(InputSignal.BREAKER),
            fan_alarm=signals.get(InputSignal.FAN_ALARM),
            fans_on=any(fans) if fans else None,
            contactors_closed=MappingProxyType(coils),
            contactor_feedback=MappingProxyType(feedback),
            contactor_faults=MappingProxyType(faults),
            lock_coils=MappingProxyType({cid: read_back[w.coil] for cid, w in self.locks.items()}),
            locks_locked=MappingProxyType(locks_locked),
            outputs_as_commanded=read_back == self._outputs,
        )

    async def program_watchdog(self) -> None:
        """Safe values off, then the timeout, then enable (so it never runs with an old timeout)."""
        watchdog_s = self.config.watchdog_s
        if watchdog_s is None:
            return
        if self.config.layout == "owen":
            log.warning("IO module: Owen modules' network timeout is set with Owen's configurator, "
                        "not over Modbus; set it to %s s on the module", watchdog_s)
        else:
            device = self.config.device_id
            for address in sorted(self._outputs):
                await self.hub.write_coil(device, SAFE_VALUE_COIL_BASE + address, False)
            timeout = max(1, round(watchdog_s / WATCHDOG_UNIT_S))
            await self.hub.write_registers(device, WATCHDOG_TIMEOUT_REGISTER, [timeout])
            await self.hub.write_coil(device, WATCHDOG_ENABLE_COIL, True)
        self._watchdog_pending = False

    @property
    def requests_per_poll(self) -> int:
        return len(self._reads)

    async def _switch(self, key: ContactorKey, closed: bool) -> None:
        wiring = self.contactors[key]
        await self._set_outputs({wiring.coil: closed})
        self._note_coil(key, closed and not self._estop_pressed)

    async def _set_outputs(self, changes: Mapping[int, bool]) -> None:
        """Update the desired image, then write it; outputs whose write failed are sent again
        with the next write."""
        self._outputs |= changes
        self._unconfirmed |= set(changes)
        await self.layout.write(self.hub, self.outputs, set(self._unconfirmed))
        self._unconfirmed.clear()

    def _note_coil(self, key: ContactorKey, on: bool, now: float | None = None) -> None:
        if self._coil_on[key] != on:
            self._coil_on[key] = on
            self._coil_changed_at[key] = self._clock() if now is None else now

    def _feedback_fault(self, key: ContactorKey, closed: bool, now: float) -> ContactorFault | None:
        coil_on = self._coil_on[key]
        if closed == coil_on or now - self._coil_changed_at[key] < self.config.feedback_timeout_s:
            return None
        return ContactorFault.NOT_CLOSING if coil_on else ContactorFault.WELDED

    def _wire_bits(self) -> list[WireBit]:
        inputs = [point.address for _, point in self.config.inputs.wired()]
        inputs += [w.feedback.address for w in (*self.contactors.values(), *self.locks.values())
                   if w.feedback is not None]
        return ([self.layout.input_bit(address) for address in inputs]
                + [self.layout.output_bit(address) for address in self._outputs])
