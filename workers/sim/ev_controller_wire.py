"""The simulated controller's Modbus side: the register map of its configured model.

Each controller is one pymodbus device whose every request goes through `ControllerPort`
(its `action`), which asks the attached controller's map for the words or hands it the
written values: the words come from the controller's state at the moment of the request, and
a write is checked and applied as the real device would (exception 03 for a value outside
the protocol, 06 while busy). The encoders are the drivers' own (station_dc, phoenix_ev_cc),
so both ends of the wire share one definition. Offline, the device answers as a Modbus TCP
gateway does for a silent RS485 device (exception 0x0B).
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

from pymodbus.constants import ExcCodes
from pymodbus.simulator import SimDevice

from workers.drivers.controllers import phoenix_ev_cc as phoenix
from workers.drivers.controllers import station_dc as own
from workers.drivers.controllers.bootloader_protocol import STATUS_START as BOOTLOADER_REGISTERS
from workers.drivers.controllers.iec61851 import PilotState, amps_to_duty
from workers.drivers.controllers.interface import OutputLimits

if TYPE_CHECKING:
    from workers.sim.ev_controller import SimulatedController

BITS_PER_WORD = 16


class Table(IntEnum):
    COILS = 1
    DISCRETE_INPUTS = 2
    HOLDING = 3
    INPUTS = 4


_TABLE_OF = {1: Table.COILS, 5: Table.COILS, 15: Table.COILS, 2: Table.DISCRETE_INPUTS,
             3: Table.HOLDING, 6: Table.HOLDING, 16: Table.HOLDING, 4: Table.INPUTS}


class RegisterMap(Protocol):
    def read(self, table: Table, address: int, count: int) -> list[int] | ExcCodes: ...

    def write(self, address: int, values: list[int]) -> ExcCodes | None: ...

    def bits(self, table: Table, address: int) -> dict[int, bool] | ExcCodes:
        """Every bit of the table by address, if `address` is one of them."""
        ...

    def write_bits(self, address: int, values: list[bool]) -> ExcCodes | None: ...


def register_map(controller: SimulatedController) -> RegisterMap:
    model = controller.connector.controller.model
    return PhoenixMap(controller) if model == phoenix.MODEL else StationDcMap(controller)


def _words(blocks: dict[int, list[int]], address: int, count: int) -> list[int] | ExcCodes:
    """The words of one block holding the whole range; a range touching an unmapped address
    is refused, as a device refuses it."""
    for start, words in blocks.items():
        if start <= address and address + count <= start + len(words):
            return words[address - start:address - start + count]
    return ExcCodes.ILLEGAL_ADDRESS


class StationDcMap:
    """docs/controller-protocol.md version 2 (version 1 and the lease)."""

    def __init__(self, controller: SimulatedController) -> None:
        self.controller = controller

    def read(self, table: Table, address: int, count: int) -> list[int] | ExcCodes:
        controller = self.controller
        if controller.in_bootloader and address >= BOOTLOADER_REGISTERS:
            return controller.bootloader.read(table, address, count)
        if table is Table.INPUTS:
            if controller.in_bootloader and address < own.IDENTITY_START:
                return ExcCodes.DEVICE_BUSY
            identity = own.encode_identity(controller.firmware, in_bootloader=controller.in_bootloader)
            return _words({0: own.encode_inputs(controller.snapshot()), own.IDENTITY_START: identity},
                          address, count)
        if controller.in_bootloader and address < own.COMMAND_COUNT:
            return ExcCodes.DEVICE_BUSY
        bootloader = own.BOOTLOADER_MAGIC if controller.in_bootloader else own.BOOTLOADER_LEAVE
        return _words({0: self._output_words(), own.HoldingRegister.BOOTLOADER: [bootloader]}, address, count)

    def write(self, address: int, values: list[int]) -> ExcCodes | None:
        if address == own.HoldingRegister.BOOTLOADER and len(values) == 1:
            return self._bootloader(values[0])
        if self.controller.in_bootloader and address >= BOOTLOADER_REGISTERS:
            return self.controller.bootloader.write(address, values)
        if address + len(values) > own.COMMAND_COUNT:
            return ExcCodes.ILLEGAL_ADDRESS
        controller = self.controller
        if controller.in_bootloader:
            return ExcCodes.DEVICE_BUSY
        words = self._output_words()
        words[address:address + len(values)] = values
        try:
            enabled, limits = own.decode_output(words[:own.OUTPUT_COUNT])
            lease_s = own.decode_lease(words[own.HoldingRegister.LEASE_DS])
        except ValueError:
            return ExcCodes.ILLEGAL_VALUE
        controller.command.enabled, controller.command.limits = enabled, limits
        controller.lease.renew(lease_s, enable_written=address == own.HoldingRegister.ENABLE)
        return None

    def bits(self, table: Table, address: int) -> dict[int, bool] | ExcCodes:
        return ExcCodes.ILLEGAL_FUNCTION

    def write_bits(self, address: int, values: list[bool]) -> ExcCodes | None:
        return ExcCodes.ILLEGAL_FUNCTION

    def _output_words(self) -> list[int]:
        """Holding 0..4: enable, the three limits, the lease."""
        command, lease_s = self.controller.command, self.controller.lease.duration_s
        return [1 if command.enabled else 0, *own.encode_limits(command.limits), own.encode_lease(lease_s)]

    def _bootloader(self, value: int) -> ExcCodes | None:
        controller = self.controller
        if value == own.BOOTLOADER_MAGIC and not controller.in_bootloader:
            return None if controller.enter_bootloader() else ExcCodes.DEVICE_BUSY
        if value == own.BOOTLOADER_LEAVE and controller.in_bootloader:
            controller.leave_bootloader()
            return None
        return ExcCodes.ILLEGAL_VALUE


PHOENIX_NAME = "EV-CC-AC1-M3-CBC-RCM"
PHOENIX_DIP_CURRENT_A = 32  # S1/DIP 5+6 preset: the current after power-up
PHOENIX_LOCK, PHOENIX_RCM_TEST, PHOENIX_RESTART = 20002, 20003, 21000  # coils the driver does not use


class PhoenixMap:
    """Phoenix EV-CC-AC1-M3 (reference/hardware.md §4.1), the registers its driver and a
    technician's tool read."""

    def __init__(self, controller: SimulatedController) -> None:
        self.controller = controller
        self.state_byte = controller.connector.controller.phoenix_options.state_byte
        self.locked, self.rcm_test = False, False
        self._restart()

    def read(self, table: Table, address: int, count: int) -> list[int] | ExcCodes:
        if table is Table.HOLDING:
            current = self.controller.command.limits.current_a or PHOENIX_DIP_CURRENT_A
            return _words({phoenix.HoldingRegister.MAX_CURRENT_A: [int(current)]}, address, count)
        return _words({1000: self._identity(), phoenix.STATUS_START: self._status(),
                       24017: [0, 0, 0, 0], phoenix.InputRegister.ERROR_BITS: [self._errors()],
                       24027: [PHOENIX_DIP_CURRENT_A]}, address, count)

    def write(self, address: int, values: list[int]) -> ExcCodes | None:
        if address != phoenix.HoldingRegister.MAX_CURRENT_A or len(values) != 1:
            return ExcCodes.ILLEGAL_ADDRESS
        if not phoenix.MIN_CURRENT_A <= values[0] <= phoenix.MAX_CURRENT_A:
            return ExcCodes.ILLEGAL_VALUE
        self.controller.command.limits = OutputLimits(current_a=float(values[0]))
        return None

    def bits(self, table: Table, address: int) -> dict[int, bool] | ExcCodes:
        if table is not Table.COILS:
            return ExcCodes.ILLEGAL_FUNCTION
        command = self.controller.command
        coils = {phoenix.Coil.ENABLE_CHARGING: command.enabled, phoenix.Coil.AVAILABLE: command.available,
                 PHOENIX_LOCK: self.locked, PHOENIX_RCM_TEST: self.rcm_test, PHOENIX_RESTART: False}
        return coils if address in coils else ExcCodes.ILLEGAL_ADDRESS

    def write_bits(self, address: int, values: list[bool]) -> ExcCodes | None:
        if len(values) != 1:
            return ExcCodes.ILLEGAL_ADDRESS
        value, command = values[0], self.controller.command
        if address == phoenix.Coil.ENABLE_CHARGING:
            command.enabled = value
        elif address == phoenix.Coil.AVAILABLE:
            command.available = value
        elif address == PHOENIX_LOCK:
            self.locked = value
        elif address == PHOENIX_RCM_TEST:
            self.rcm_test = value
        elif address == PHOENIX_RESTART:
            if value:
                self._restart()
        else:
            return ExcCodes.ILLEGAL_ADDRESS
        return None

    def _restart(self) -> None:
        """Volatile settings back to their power-up values."""
        command = self.controller.command
        command.enabled, command.available = False, True
        command.limits = OutputLimits(current_a=float(PHOENIX_DIP_CURRENT_A))

    def _identity(self) -> list[int]:
        name = PHOENIX_NAME.ljust(32).encode("ascii")
        words = [name[i] << 8 | name[i + 1] for i in range(0, 32, 2)] + [0] * 11  # 1000..1026
        major, minor, patch = self.controller.firmware
        return [*words, 0x2024, 0x0101, 0, 1, ord("V") << 8 | major, minor, patch]  # 1027..1033

    def _status(self) -> list[int]:
        """24000..24005: state, PP cable current, PWM duty %, PWM current A, digital inputs/outputs."""
        controller, view = self.controller, self.controller.view()
        pilot = view.pilot if view is not None and view.pilot is not None else PilotState("A", False)
        if controller.controller_errors():
            pilot = PilotState("F", None)
        amps = view.pwm_current_a if view is not None else None
        duty = amps_to_duty(amps) if amps is not None else None
        cable = int(controller.ev.cable_current_a) if controller.ev is not None else 0
        return [phoenix.encode_state(pilot, self.state_byte), cable, round(duty or 0), int(amps or 0), 0, 0]

    def _errors(self) -> int:
        return phoenix.encode_errors(self.controller.snapshot().errors)


class ControllerPort:
    """`answer` is the pymodbus `action` of a controller's device (workers/sim/devices.py):
    the device's own tables only carry the words this port puts there for each request."""

    def __init__(self) -> None:
        self.controller: SimulatedController | None = None

    def attach(self, controller: SimulatedController) -> None:
        self.controller = controller

    async def answer(self, function_code: int, start: int, address: int, count: int,
                     registers: list[int], values: list[int] | list[bool] | None) -> ExcCodes | None:
        controller = self.controller
        if controller is None or not controller.answers_itself:
            return ExcCodes.GATEWAY_NO_RESPONSE
        table = _TABLE_OF.get(function_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        wire = controller.wire
        if table in (Table.COILS, Table.DISCRETE_INPUTS):
            if values:
                return wire.write_bits(address, [bool(v) for v in values]) if table is Table.COILS \
                    else ExcCodes.ILLEGAL_FUNCTION
            return _fill_bits(wire.bits(table, address), start, address, count, registers)
        if values:
            return wire.write(address, [int(v) for v in values]) if table is Table.HOLDING \
                else ExcCodes.ILLEGAL_FUNCTION
        words = wire.read(table, address, count)
        if isinstance(words, ExcCodes):
            return words
        registers[address - start:address - start + count] = words
        return None


def port_of(device: SimDevice) -> ControllerPort | None:
    """The port a controller device was built with (its action is the port's `answer`)."""
    port = getattr(device.action, "__self__", None)
    return port if isinstance(port, ControllerPort) else None


def _fill_bits(bits: dict[int, bool] | ExcCodes, start: int, address: int, words: int,
               registers: list[int]) -> ExcCodes | None:
    """Pack the map's bits into the `words` 16-bit words holding `address` (bit 0 = LSB)."""
    if isinstance(bits, ExcCodes):
        return bits
    first_word = address // BITS_PER_WORD
    for index in range(first_word, first_word + words):
        base = index * BITS_PER_WORD
        registers[index - start] = sum(1 << i for i in range(BITS_PER_WORD) if bits.get(base + i, False))
    return None
