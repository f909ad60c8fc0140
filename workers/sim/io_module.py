"""The simulated IO module(s): what a cabinet's DI/DO modules do on the wire (reference/hardware.md §2.5).

Serves the layout station.toml describes ("bits": coils and discrete inputs, ICP DAS style;
"owen": bitmask registers, the inputs optionally on a second module) with the driver's own
address rules (workers/drivers/io_layout.py), so both always agree on where a channel is.
- Inputs show the world through each point's polarity: e-stop, door, the IMD's alarm relay,
  the fan unit's alarm, and each contactor's auxiliary contact. ICP DAS modules also serve the
  inputs in the coil table and Owen modules answer FC03 and FC04 alike, so both are served.
- A contact follows its coil `feedback_delay_s` after the coil changes (real contactors take
  20-100 ms). The e-stop is wired into the coil circuit: pressing it drops every coil. The
  power modules' link contactors (`[[power_modules.links]]`) are contactors like the
  connectors', keyed by `link_key` ("pm3>1"). Faults: `weldN` (connector N's contact stays
  closed once it has closed), `weld_pm3_1` (the same for link pm3>1), `contactor_stuck_open`
  (no contact closes), `fan` (the fan alarm input, if wired). A Type 2 socket's cable lock
  (workers/sim/cable_lock.py) is one more coil and position switch: `lock_stuckN` jams it.
- Host watchdog: the outputs drop to their safe values when the host has not talked to the
  outputs' module for the watchdog time; the host's next write sets them. "bits" modules
  serve the ICP DAS registers (safe values 00129.., enable 00261, timeout 40489 in 0.1 s),
  so the station's driver programs it; they start as commissioned with `watchdog_s`. "owen"
  modules take `watchdog_s` as set with Owen's configurator (safe value: off).
- Offline: every request is answered with 0x0B, as a gateway does for a silent RS485 device.
The world is kept here and written to the tables; pymodbus calls the device action for the
simulator's own accesses too, so those run with `_internal` set (they never suspend, so no
host request can slip in between).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimDevice

from workers.common.io_config import InputSignal, IoPoint
from workers.common.power_config import link_key
from workers.common.station_config import StationConfig
from workers.drivers.io_layout import WireBit, layout_for
from workers.drivers.io_module import (
    SAFE_VALUE_COIL_BASE,
    WATCHDOG_ENABLE_COIL,
    WATCHDOG_TIMEOUT_REGISTER,
    WATCHDOG_UNIT_S,
    ContactorKey,
)
from workers.drivers.registers import FunctionCode
from workers.sim import devices
from workers.sim.cable_lock import SimCableLock
from workers.sim.devices import DeviceAction
from workers.sim.faults import FaultState, HasFaults

log = logging.getLogger(__name__)

FEEDBACK_DELAY_S = 0.05
_TIMER_SLACK_S = 0.001  # asyncio may run a timer up to its clock resolution early
_TABLE_OF: dict[int, FunctionCode] = {
    1: FunctionCode.READ_COILS, 5: FunctionCode.READ_COILS, 15: FunctionCode.READ_COILS,
    2: FunctionCode.READ_DISCRETE_INPUTS, 3: FunctionCode.READ_HOLDING_REGISTERS,
    6: FunctionCode.READ_HOLDING_REGISTERS, 16: FunctionCode.READ_HOLDING_REGISTERS,
    4: FunctionCode.READ_INPUT_REGISTERS,
}
_WRITES = frozenset({5, 6, 15, 16})
_BIT_TABLES = frozenset({FunctionCode.READ_COILS, FunctionCode.READ_DISCRETE_INPUTS})
_TWIN_TABLE = {FunctionCode.READ_COILS: FunctionCode.READ_DISCRETE_INPUTS,
               FunctionCode.READ_INPUT_REGISTERS: FunctionCode.READ_HOLDING_REGISTERS,
               FunctionCode.READ_HOLDING_REGISTERS: FunctionCode.READ_INPUT_REGISTERS}


class NotWired(ValueError):
    """station.toml wires no such input (e.g. `sim door` on a cabinet without a door switch)."""


class SimIoModule(HasFaults):
    name = "io"

    def __init__(self, config: StationConfig, *, imd_alarm: Callable[[], bool] = lambda: False,
                 feedback_delay_s: float = FEEDBACK_DELAY_S) -> None:
        self.config = config.io_module
        self.layout = layout_for(self.config)
        links = config.power_modules.links if config.power_modules is not None else ()
        self.coils: dict[ContactorKey, int] = {c.id: c.contactor_coil for c in config.connectors}
        self.coils |= {link.key: link.coil for link in links}
        self.feedback: dict[ContactorKey, IoPoint] = {
            c.id: c.contactor_feedback for c in config.connectors if c.contactor_feedback is not None}
        self.feedback |= {link.key: link.feedback for link in links if link.feedback is not None}
        self.locks = {c.id: lock for c in config.connectors if (lock := SimCableLock.of(c)) is not None}
        kinds = (*(_weld_kind(key) for key in self.coils), "contactor_stuck_open", "fan",
                 *(lock.fault_kind for lock in self.locks.values()))
        self._faults = FaultState(self.name, kinds)
        self._imd_alarm = imd_alarm
        self._delay_s = feedback_delay_s
        self.estop_pressed = False
        self.door_open = False
        self._contacts = dict.fromkeys(self.coils, False)
        self._coil_on = dict.fromkeys(self.coils, False)  # as the contactor sees it (after the e-stop)
        self._coil_changed_at = dict.fromkeys(self.coils, 0.0)
        self._server: ModbusTcpServer | None = None
        self._internal = False
        self._last_host_access = 0.0
        self._watchdog_tripped = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._tables, self._input_addresses = self._plan_tables()

    # ---- SimulatedDevice (HasFaults): contacts follow a fault change -----------------

    def inject_fault(self, kind: str) -> None:
        super().inject_fault(kind)
        self._schedule_settle()

    def clear_faults(self) -> None:
        super().clear_faults()
        self._schedule_settle()

    # ---- the world -------------------------------------------------------------------

    def contacts_closed(self, key: ContactorKey) -> bool:
        """The contactor's contacts (what its feedback contact reports); `key`: a connector id
        or a link's `link_key`."""
        return self._contacts[key]

    def conducts(self, key: ContactorKey) -> bool:
        """Whether power can flow through the contactor (a connector id, or a link's
        `link_key`): the coil energised (as of the last settle) and the contacts closed.
        Opening counts at once, so no power flows after the host cleared the coil even while
        the contacts are still moving (or welded: arcs are not modelled)."""
        return self._coil_on[key] and self._contacts[key]

    def lock_locked(self, connector_id: int) -> bool:
        """Whether connector `connector_id`'s cable lock is locked (its bolt, as its switch reports)."""
        return self.locks[connector_id].locked

    def link_conducts(self, module: str, connector_id: int) -> bool:
        """Whether module `module` is connected to DC connector `connector_id` now."""
        return self.conducts(link_key(module, connector_id))

    async def set_estop(self, pressed: bool) -> None:
        self.estop_pressed = pressed
        await self._settle()
        self._schedule_settle()

    async def set_door(self, open_: bool) -> None:
        if self.config.inputs.door is None:
            raise NotWired("station.toml wires no door switch ([io_module.inputs] door)")
        self.door_open = open_
        await self._write_inputs()

    # ---- the wire --------------------------------------------------------------------

    def devices(self) -> dict[int, SimDevice]:
        """The SimDevice of each module id (one, or the outputs' and the inputs' module)."""
        return {
            device_id: devices.io_device(
                device_id, coils=_extent(tables.get(FunctionCode.READ_COILS)),
                discrete_inputs=_extent(tables.get(FunctionCode.READ_DISCRETE_INPUTS)),
                holding=_span(tables.get(FunctionCode.READ_HOLDING_REGISTERS)),
                input_registers=_span(tables.get(FunctionCode.READ_INPUT_REGISTERS)),
                action=self._action(device_id))
            for device_id, tables in self._tables.items()
        }

    async def attach(self, server: ModbusTcpServer) -> None:
        """Start serving on `server` (listening already): inputs show the world, outputs off."""
        self._server = server
        self._last_host_access = asyncio.get_running_loop().time()
        await self._write_inputs()
        if self._programmable_watchdog():
            watchdog_s = self.config.watchdog_s
            timeout = 0 if watchdog_s is None else round(watchdog_s / WATCHDOG_UNIT_S)
            await self._set(self.config.device_id, FunctionCode.READ_HOLDING_REGISTERS,
                            WATCHDOG_TIMEOUT_REGISTER, [timeout])
            await self._set(self.config.device_id, FunctionCode.READ_COILS, WATCHDOG_ENABLE_COIL,
                            [watchdog_s is not None])

    def detach(self) -> None:
        self._server = None
        for task in self._tasks:
            task.cancel()

    async def tick(self) -> None:
        """The physics step: the host watchdog, then contacts and inputs from the world."""
        now = asyncio.get_running_loop().time()
        watchdog = await self._watchdog_s()
        if watchdog is not None and not self._watchdog_tripped and now - self._last_host_access > watchdog:
            self._watchdog_tripped = True
            log.warning("IO module: no request from the host for %.1f s, outputs dropped to their "
                        "safe values", watchdog)
            for address in self._output_addresses():
                await self._write_output(address, await self._safe_value(address))
            self._schedule_settle()
        await self._settle()

    def _programmable_watchdog(self) -> bool:
        return self.config.layout == "bits"

    async def _watchdog_s(self) -> float | None:
        """The watchdog in force: as programmed on a "bits" module, as configured on Owen's."""
        if self._server is None or not self._programmable_watchdog():
            return self.config.watchdog_s
        device = self.config.device_id
        enabled = (await self._get(device, FunctionCode.READ_COILS, WATCHDOG_ENABLE_COIL))[0]
        timeout = int((await self._get(device, FunctionCode.READ_HOLDING_REGISTERS,
                                       WATCHDOG_TIMEOUT_REGISTER))[0])
        return timeout * WATCHDOG_UNIT_S if enabled and timeout > 0 else None

    async def _safe_value(self, address: int) -> bool:
        if not self._programmable_watchdog():
            return False
        return bool((await self._get(self.config.device_id, FunctionCode.READ_COILS,
                                     SAFE_VALUE_COIL_BASE + address))[0])

    def _output_addresses(self) -> list[int]:
        return [*self.coils.values(), *self.config.fans, *(lock.coil for lock in self.locks.values())]

    def _input_points(self) -> Iterator[tuple[IoPoint, bool]]:
        """Every wired input with whether its signal is active now."""
        states = {InputSignal.ESTOP: self.estop_pressed, InputSignal.DOOR: self.door_open,
                  InputSignal.IMD_ALARM: self._imd_alarm(), InputSignal.SPD: False,
                  InputSignal.BREAKER: False, InputSignal.FAN_ALARM: self._faults.has("fan")}
        for signal, point in self.config.inputs.wired():
            yield point, states[signal]
        for key, point in self.feedback.items():
            yield point, self._contacts[key]
        for lock in self.locks.values():
            yield lock.feedback, lock.locked

    def _input_wire(self, address: int) -> list[WireBit]:
        """Where an input shows: the driver's place, and the twin table the family also serves."""
        primary = self.layout.input_bit(address)
        served = [primary]
        if self.config.layout == "owen" or primary.table is FunctionCode.READ_COILS:
            twin = _TWIN_TABLE[primary.table]
            served.append(WireBit(primary.device_id, twin, primary.address, primary.bit))
        return served

    def _plan_tables(self) -> tuple[dict[int, dict[FunctionCode, set[int]]], dict[tuple[int, int], set[int]]]:
        """The addresses each module serves per table, and which of them are inputs."""
        tables: dict[int, dict[FunctionCode, set[int]]] = defaultdict(lambda: defaultdict(set))
        inputs: dict[tuple[int, int], set[int]] = defaultdict(set)
        for address in self._output_addresses():
            wire = self.layout.output_bit(address)
            tables[wire.device_id][wire.table].add(wire.address)
        if self._programmable_watchdog():
            outputs = tables[self.config.device_id]
            outputs[FunctionCode.READ_COILS] |= {WATCHDOG_ENABLE_COIL, *(
                SAFE_VALUE_COIL_BASE + address for address in self._output_addresses())}
            outputs[FunctionCode.READ_HOLDING_REGISTERS].add(WATCHDOG_TIMEOUT_REGISTER)
        for point, _ in self._input_points():
            for wire in self._input_wire(point.address):
                tables[wire.device_id][wire.table].add(wire.address)
                inputs[(wire.device_id, wire.table)].add(wire.address)
        return {device: dict(by_table) for device, by_table in tables.items()}, dict(inputs)

    def _action(self, device_id: int) -> DeviceAction:
        async def action(function_code: int, _start: int, address: int, _count: int, _registers: list[int],
                         values: list[int] | list[bool] | None) -> ExcCodes | None:
            return self._host_access(device_id, function_code, address, values)
        return action

    def _host_access(self, device_id: int, function_code: int, address: int,
                     values: list[int] | list[bool] | None) -> ExcCodes | None:
        if self._internal:
            return None
        if not self._faults.online:
            return ExcCodes.GATEWAY_NO_RESPONSE
        table = _TABLE_OF.get(function_code)
        if table is None or table not in self._tables[device_id]:
            return ExcCodes.ILLEGAL_FUNCTION
        if function_code in _WRITES:
            inputs = self._input_addresses.get((device_id, table), set())
            if any(address + offset in inputs for offset in range(len(values or []))):
                return ExcCodes.ILLEGAL_ADDRESS  # inputs are read-only
            self._schedule_settle()
        if device_id == self.config.device_id:
            self._last_host_access = asyncio.get_running_loop().time()
            self._watchdog_tripped = False
        return None

    def _schedule_settle(self) -> None:
        """Settle now (note the coil change) and once the contacts have had time to move; once
        more a delay later, as the first settle notes the change a little after the write."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not serving yet: the first tick settles
        loop.call_soon(self._spawn_settle)
        loop.call_later(self._delay_s, self._spawn_settle)
        loop.call_later(2 * self._delay_s, self._spawn_settle)

    def _spawn_settle(self) -> None:
        if self._server is None:
            return
        task = asyncio.get_running_loop().create_task(self._settle(), name="sim.io.settle")
        self._tasks.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulated IO module failed to settle", exc_info=task.exception())

    async def _settle(self) -> None:
        """Contacts follow their coils (after the delay, within the faults), inputs follow the world."""
        if self._server is None:
            return
        now = asyncio.get_running_loop().time()
        for key, coil in self.coils.items():
            on = await self._read_output(coil) and not self.estop_pressed
            if on != self._coil_on[key]:
                self._coil_on[key], self._coil_changed_at[key] = on, now
            if now - self._coil_changed_at[key] >= self._delay_s - _TIMER_SLACK_S:
                self._contacts[key] = self._contact_state(key, on)
        for lock in self.locks.values():
            lock.follow(await self._read_output(lock.coil), now, self._delay_s,
                        stuck=self._faults.has(lock.fault_kind))
        await self._write_inputs()

    def _contact_state(self, key: ContactorKey, coil_on: bool) -> bool:
        if self._faults.has(_weld_kind(key)):
            return self._contacts[key] or coil_on
        return coil_on and not self._faults.has("contactor_stuck_open")

    async def _write_inputs(self) -> None:
        words: dict[tuple[int, FunctionCode, int], int] = defaultdict(int)
        for point, active in self._input_points():
            level = point.level(active)
            for wire in self._input_wire(point.address):
                if wire.table in _BIT_TABLES:
                    await self._set(wire.device_id, wire.table, wire.address, [level])
                else:
                    words[(wire.device_id, wire.table, wire.address)] |= int(level) << wire.bit
        for (device_id, table, address), word in words.items():
            await self._set(device_id, table, address, [word])

    async def _read_output(self, address: int) -> bool:
        wire = self.layout.output_bit(address)
        value = (await self._get(wire.device_id, wire.table, wire.address))[0]
        return bool(value) if wire.table in _BIT_TABLES else bool(int(value) >> wire.bit & 1)

    async def _write_output(self, address: int, on: bool) -> None:
        wire = self.layout.output_bit(address)
        if wire.table in _BIT_TABLES:
            await self._set(wire.device_id, wire.table, wire.address, [on])
            return
        word = int((await self._get(wire.device_id, wire.table, wire.address))[0])
        word = word | 1 << wire.bit if on else word & ~(1 << wire.bit)
        await self._set(wire.device_id, wire.table, wire.address, [word])

    async def _get(self, device_id: int, table: FunctionCode, address: int) -> list[int] | list[bool]:
        assert self._server is not None
        self._internal = True
        try:
            return await self._server.async_getValues(device_id, table, address, 1)
        finally:
            self._internal = False

    async def _set(self, device_id: int, table: FunctionCode, address: int,
                   values: list[int] | list[bool]) -> None:
        assert self._server is not None
        self._internal = True
        try:
            await self._server.async_setValues(device_id, table, address, values)
        finally:
            self._internal = False


def _weld_kind(key: ContactorKey) -> str:
    """The fault kind welding a contactor: "weld1" (connector 1), "weld_pm3_1" (link pm3>1)."""
    return f"weld{key}" if isinstance(key, int) else "weld_" + key.replace(">", "_")


def _extent(addresses: set[int] | None) -> int:
    """Bits a table needs from address 0 (0: the module has no such table)."""
    return max(addresses) + 1 if addresses else 0


def _span(addresses: set[int] | None) -> tuple[int, int] | None:
    """(first register, count) a register table needs; None: the module has no such table."""
    return (min(addresses), max(addresses) - min(addresses) + 1) if addresses else None
