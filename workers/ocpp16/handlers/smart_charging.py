"""SetChargingProfile, GetCompositeSchedule, ClearChargingProfile (OCPP 1.6 §5.16, §5.7, §5.5),
answered by the smart-charging feature (workers/ocpp16/smart_charging/).

Schema errors never get here: protocol.py answers them first, an invalid enum value with
PropertyConstraintViolation (errata 3.24, 3.38, 3.39). Here: an unknown connector in
SetChargingProfile is PropertyConstraintViolation too (errata 3.38), a date that does not parse
FormationViolation; GetCompositeSchedule for an unknown connector is Rejected (§5.7).
"""

from __future__ import annotations

from typing import Any

from ocpp.charge_point import snake_to_camel_case
from ocpp.exceptions import FormatViolationError, PropertyConstraintViolationError
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, GetCompositeScheduleStatus

from workers.ocpp16.handlers.base import HandlerBase
from workers.ocpp16.smart_charging.model import RateUnit, WireFormatError, wire_time


class SmartChargingHandlers(HandlerBase):
    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any],
                                      **_: Any) -> call_result.SetChargingProfile:
        if not self.ctx.smart_charging.knows_connector(connector_id):
            raise PropertyConstraintViolationError(description=f"connectorId {connector_id} does not exist")
        try:
            status = await self.ctx.smart_charging.set_profile(connector_id,
                                                               snake_to_camel_case(cs_charging_profiles))
        except WireFormatError as error:
            raise FormatViolationError(description=str(error)) from error
        return call_result.SetChargingProfile(status=status)

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(self, connector_id: int, duration: int,
                                        charging_rate_unit: str | None = None,
                                        **_: Any) -> call_result.GetCompositeSchedule:
        unit = None if charging_rate_unit is None else RateUnit(charging_rate_unit)
        report = await self.ctx.smart_charging.composite(connector_id, duration, unit)
        if report is None:
            return call_result.GetCompositeSchedule(status=GetCompositeScheduleStatus.rejected,
                                                    connector_id=connector_id)
        return call_result.GetCompositeSchedule(
            status=GetCompositeScheduleStatus.accepted, connector_id=connector_id,
            schedule_start=wire_time(report.schedule_start), charging_schedule=report.wire_schedule())

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(self, **criteria: Any) -> call_result.ClearChargingProfile:
        status = await self.ctx.smart_charging.clear(criteria.get("id"), criteria.get("connector_id"),
                                                     criteria.get("charging_profile_purpose"),
                                                     criteria.get("stack_level"))
        return call_result.ClearChargingProfile(status=status)
