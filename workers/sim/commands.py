"""The simulator's bus command (contract.SIM): what `manage.py sim ...` asks for.

Each action changes the simulated world only; the station's services notice it through
the wire protocols like they would on real hardware. A refusal carries a short reason key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bus.enums import Standard
from bus.messages import CommandResult, Empty, SimAction, SimDeviceInfo, SimDeviceList
from workers.sim import ev as ev_defaults
from workers.sim.ev import Battery, SimulatedEv
from workers.sim.ev_controller import PlugError
from workers.sim.faults import DeviceRegistry, SimulatedDevice, UnknownFault
from workers.sim.io_module import NotWired
from workers.sim.rfid_port import SimulatedCardReader
from workers.sim.station import SimStation

log = logging.getLogger(__name__)

_STANDARDS = {"ccs": Standard.CCS, "chademo": Standard.CHADEMO, "gbt": Standard.GBT, "type2": Standard.TYPE2}


class SimCommands:
    def __init__(self, station: SimStation, reader: SimulatedCardReader,
                 registry: DeviceRegistry | None = None) -> None:
        self.station = station
        self.reader = reader
        self.registry = registry or DeviceRegistry()

    async def handle(self, request: SimAction) -> CommandResult:
        handler = {
            "plug": self._plug,
            "unplug": self._unplug,
            "swipe": self._swipe,
            "estop": self._estop,
            "door": self._door,
            "pause": self._pause,
            "resume": self._resume,
            "fault": self._fault,
            "clear": self._clear,
            "offline": self._offline,
            "online": self._online,
        }[request.action]
        result = await handler(request)
        log.info("sim %s: %s", request.model_dump(exclude_none=True),
                 "done" if result.accepted else f"refused ({result.reason})")
        return result

    def _connector_problem(self, request: SimAction) -> CommandResult | None:
        if request.connector_id is None:
            return CommandResult(accepted=False, reason="missing_connector_id")
        if request.connector_id not in self.station.connectors:
            return CommandResult(accepted=False, reason="unknown_connector")
        return None

    async def _plug(self, request: SimAction) -> CommandResult:
        problem = self._connector_problem(request)
        if problem:
            return problem
        assert request.connector_id is not None
        connector = self.station.connectors[request.connector_id]
        standard = _STANDARDS[request.standard] if request.standard else connector.config.standard
        ac = standard is Standard.TYPE2
        default_kw = ev_defaults.DEFAULT_MAX_POWER_KW_AC if ac else ev_defaults.DEFAULT_MAX_POWER_KW_DC
        soc = _or(request.soc, ev_defaults.DEFAULT_SOC_PCT)
        target = _or(request.target_soc, ev_defaults.DEFAULT_TARGET_SOC_PCT)
        if soc > target:
            return CommandResult(accepted=False, reason="soc_above_target")
        battery = Battery(capacity_kwh=_or(request.capacity_kwh, ev_defaults.DEFAULT_CAPACITY_KWH), soc=soc)
        max_power_w = _or(request.max_power_kw, default_kw) * 1000.0
        ev = SimulatedEv(battery, target_soc=target, max_power_w=max_power_w)
        return self._on_connector(lambda: self.station.plug(connector.config.id, ev, standard))

    async def _unplug(self, request: SimAction) -> CommandResult:
        problem = self._connector_problem(request)
        if problem:
            return problem
        assert request.connector_id is not None
        connector_id = request.connector_id
        return self._on_connector(lambda: self.station.unplug(connector_id))

    async def _pause(self, request: SimAction) -> CommandResult:
        """The EV stops taking energy (S2 opens on Type 2; DC current demand goes to zero)."""
        problem = self._connector_problem(request)
        if problem:
            return problem
        assert request.connector_id is not None
        controller = self.station.connectors[request.connector_id].controller
        return self._on_connector(lambda: controller.set_paused(True))

    async def _resume(self, request: SimAction) -> CommandResult:
        problem = self._connector_problem(request)
        if problem:
            return problem
        assert request.connector_id is not None
        controller = self.station.connectors[request.connector_id].controller
        return self._on_connector(lambda: controller.set_paused(False))

    @staticmethod
    def _on_connector(change: Callable[[], None]) -> CommandResult:
        """Do a plug/unplug/pause/resume; the controller refuses with a reason key."""
        try:
            change()
        except PlugError as refusal:
            return CommandResult(accepted=False, reason=str(refusal))
        return CommandResult(accepted=True)

    async def _swipe(self, request: SimAction) -> CommandResult:
        if request.uid is None:
            return CommandResult(accepted=False, reason="missing_uid")
        try:
            self.reader.present(request.uid)  # held for rfid_port.SWIPE_HOLD_S, then taken away
        except ValueError:  # not a UID this reader can read
            return CommandResult(accepted=False, reason="invalid_uid")
        return CommandResult(accepted=True)

    async def _estop(self, request: SimAction) -> CommandResult:
        if request.pressed is None:
            return CommandResult(accepted=False, reason="missing_pressed")
        await self.station.set_estop(request.pressed)
        return CommandResult(accepted=True)

    async def _door(self, request: SimAction) -> CommandResult:
        if request.open is None:
            return CommandResult(accepted=False, reason="missing_open")
        try:
            await self.station.set_door(request.open)
        except NotWired:
            return CommandResult(accepted=False, reason="no_door")
        return CommandResult(accepted=True)


    async def list_devices(self, _: Empty) -> SimDeviceList:
        """contract.SIM_DEVICES: what `sim fault|clear|offline|online` can name."""
        return SimDeviceList(devices=[SimDeviceInfo(name=name, online=online, fault_kinds=list(kinds))
                                      for name, online, kinds in self.registry.describe()])

    def _device(self, request: SimAction) -> SimulatedDevice | CommandResult:
        if request.device is None:
            return CommandResult(accepted=False, reason="missing_device")
        device = self.registry.get(request.device)
        return device if device is not None else CommandResult(accepted=False, reason="unknown_device")

    async def _fault(self, request: SimAction) -> CommandResult:
        device = self._device(request)
        if isinstance(device, CommandResult):
            return device
        if request.kind is None:
            return CommandResult(accepted=False, reason="missing_kind")
        try:
            device.inject_fault(request.kind)
        except UnknownFault:
            return CommandResult(accepted=False, reason="unknown_fault")
        return CommandResult(accepted=True)

    async def _clear(self, request: SimAction) -> CommandResult:
        device = self._device(request)
        if isinstance(device, CommandResult):
            return device
        device.clear_faults()
        return CommandResult(accepted=True)

    async def _offline(self, request: SimAction) -> CommandResult:
        return self._set_online(request, False)

    async def _online(self, request: SimAction) -> CommandResult:
        return self._set_online(request, True)

    def _set_online(self, request: SimAction, online: bool) -> CommandResult:
        device = self._device(request)
        if isinstance(device, CommandResult):
            return device
        device.set_online(online)
        return CommandResult(accepted=True)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
