"""The answer to GetCompositeSchedule, built from the schedule's segments (OCPP 1.6 §5.7).

The schedule starts at the request's time X (whole seconds) and covers X..X+duration. Where
no profile limits, the scope's hardware ceiling (station.toml) is reported, as it is what the
connector or station can draw; where a profile allows more than the hardware, the hardware
wins too. Limits are converted to the unit asked for (else the unit of the first profile
that limits, else W) and rounded to 0.1 (the schema's `multipleOf`); periods with the same
rounded limit merge. `startSchedule` is left out of the answer's chargingSchedule (errata 3.57).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workers.ocpp16.smart_charging.model import RateUnit
from workers.ocpp16.smart_charging.schedule import Scope, Segment, from_watts


@dataclass(frozen=True)
class CompositeReport:
    schedule_start: datetime
    duration_s: int
    unit: RateUnit
    periods: tuple[tuple[int, float], ...]  # (startPeriod s, limit)

    def wire_schedule(self) -> dict[str, Any]:
        return {"duration": self.duration_s, "chargingRateUnit": self.unit.value,
                "chargingSchedulePeriod": [{"startPeriod": start_s, "limit": limit}
                                           for start_s, limit in self.periods]}


def _unit(found: Sequence[Segment], asked: RateUnit | None) -> RateUnit:
    if asked is not None:
        return asked
    return next((segment.limit.unit for segment in found if segment.limit is not None), RateUnit.watts)


def build_report(found: Sequence[Segment], start: datetime, duration_s: int, asked: RateUnit | None,
                 scope: Scope) -> CompositeReport:
    """`found` must begin at `start` (schedule.segments)."""
    unit = _unit(found, asked)
    periods: list[tuple[int, float]] = []
    for segment in found:
        offset_s = math.floor((segment.start - start).total_seconds())
        if offset_s >= duration_s and periods:
            break
        watts = min(scope.max_w, math.inf if segment.limit is None else segment.limit.watts)
        limit = round(from_watts(watts, unit, scope.phases), 1)
        # Changes within one whole second: the lowest holds for that second; a higher one
        # starts at the next second (never dropped for the rest of the schedule).
        while periods and periods[-1][0] >= offset_s:
            previous_s, previous_limit = periods[-1]
            if limit <= previous_limit:
                periods.pop()
                offset_s = previous_s
            else:
                offset_s = previous_s + 1
                break
        if offset_s >= duration_s and periods:
            continue
        if not periods or periods[-1][1] != limit:
            periods.append((offset_s, limit))
    return CompositeReport(start, duration_s, unit, tuple(periods))
