"""The simulator's bus command (contract.SIM): what `manage.py sim ...` asks for.

Each action changes the simulated world only; the station's services notice it through
the wire protocols like they would on real hardware. A refusal carries a short reason key.
"""

from __future__ import annotations

import logging

from bus.enums import Standard
from bus.messages import CommandResult, SimAction
from workers.drivers.em4100 import FrameError, normalise_uid
from workers.sim import ev as ev_defaults
from workers.sim.ev import SimulatedEv
from workers.sim.rfid_port import SimulatedReader
from workers.sim.station import SimStation

log = logging.getLogger(__name__)


class SimCommands:
    def __init__(self, station: SimStation, reader: SimulatedReader) -> None:
        self.station = station
        self.reader = reader

    async def handle(self, request: SimAction) -> CommandResult:
        handler = {
            "plug": self._plug,
            "unplug": self._unplug,
            "swipe": self._swipe,
            "estop": self._estop,
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
        if connector.ev is not None:
            return CommandResult(accepted=False, reason="already_plugged")
        ac = connector.config.standard is Standard.TYPE2
        default_kw = ev_defaults.DEFAULT_MAX_POWER_KW_AC if ac else ev_defaults.DEFAULT_MAX_POWER_KW_DC
        soc = _or(request.soc, ev_defaults.DEFAULT_SOC_PCT)
        target = _or(request.target_soc, ev_defaults.DEFAULT_TARGET_SOC_PCT)
        if soc > target:
            return CommandResult(accepted=False, reason="soc_above_target")
        self.station.plug(request.connector_id, SimulatedEv(
            soc=soc, target_soc=target,
            capacity_kwh=_or(request.capacity_kwh, ev_defaults.DEFAULT_CAPACITY_KWH),
            max_power_w=_or(request.max_power_kw, default_kw) * 1000.0,
        ))
        return CommandResult(accepted=True)

    async def _unplug(self, request: SimAction) -> CommandResult:
        problem = self._connector_problem(request)
        if problem:
            return problem
        assert request.connector_id is not None
        if self.station.connectors[request.connector_id].ev is None:
            return CommandResult(accepted=False, reason="not_plugged")
        self.station.unplug(request.connector_id)
        return CommandResult(accepted=True)

    async def _swipe(self, request: SimAction) -> CommandResult:
        if request.uid is None:
            return CommandResult(accepted=False, reason="missing_uid")
        try:
            uid = normalise_uid(request.uid)
        except FrameError:
            return CommandResult(accepted=False, reason="invalid_uid")
        await self.reader.present(uid)
        return CommandResult(accepted=True)

    async def _estop(self, request: SimAction) -> CommandResult:
        if request.pressed is None:
            return CommandResult(accepted=False, reason="missing_pressed")
        await self.station.set_estop(request.pressed)
        return CommandResult(accepted=True)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
