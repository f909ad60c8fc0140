"""The station's digital IO module: e-stop on a discrete input, one contactor coil per connector.

Addresses come from station.toml (`io_module.estop_input`, `connectors[].contactor_coil`),
0-based protocol addresses. The e-stop input reads 1 while the button is pressed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from workers.common.station_config import StationConfig
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import FunctionCode


@dataclass(frozen=True)
class IoSnapshot:
    estop_pressed: bool
    contactors_closed: Mapping[int, bool]  # connector id -> its coil is on


class IoModule:
    """The IO module on a Modbus bus; `contactor_coils` maps connector id -> coil address."""

    def __init__(self, hub: ModbusHub, device_id: int, *, estop_input: int,
                 contactor_coils: Mapping[int, int]) -> None:
        self.hub = hub
        self.device_id = device_id
        self.estop_input = estop_input
        self.contactor_coils = MappingProxyType(dict(contactor_coils))

    @classmethod
    def from_config(cls, config: StationConfig, hubs: Mapping[str, ModbusHub]) -> IoModule:
        io = config.io_module
        return cls(hubs[io.bus], io.device_id, estop_input=io.estop_input,
                   contactor_coils={c.id: c.contactor_coil for c in config.connectors})

    async def read_inputs(self, address: int, count: int = 1) -> list[bool]:
        return await self.hub.read_bits(self.device_id, FunctionCode.READ_DISCRETE_INPUTS, address, count)

    async def read_coils(self, address: int, count: int = 1) -> list[bool]:
        return await self.hub.read_bits(self.device_id, FunctionCode.READ_COILS, address, count)

    async def write_coil(self, address: int, on: bool) -> None:
        await self.hub.write_coil(self.device_id, address, on)

    async def estop_pressed(self) -> bool:
        return (await self.read_inputs(self.estop_input))[0]

    async def set_contactor(self, connector_id: int, closed: bool) -> None:
        """Switch a connector's contactor coil; KeyError for a connector the module does not drive."""
        await self.write_coil(self.contactor_coils[connector_id], closed)

    async def poll(self) -> IoSnapshot:
        """E-stop and every contactor coil, read in two requests."""
        estop = await self.estop_pressed()
        coils = sorted(self.contactor_coils.values())
        states: dict[int, bool] = {}
        if coils:
            bits = await self.read_coils(coils[0], coils[-1] - coils[0] + 1)
            states = {cid: bits[coil - coils[0]] for cid, coil in self.contactor_coils.items()}
        return IoSnapshot(estop_pressed=estop, contactors_closed=MappingProxyType(states))
