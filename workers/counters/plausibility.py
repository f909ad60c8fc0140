"""Which meter energy may be billed: a register that goes backwards or jumps is not.

A meter register can go backwards (the meter was replaced or reset, a corrupted frame slipped
through as a valid float) or jump by more than the connector could have delivered since the
last reading (a swapped word order after a firmware change, a bit flip). Billing such a value
would charge a driver for energy never delivered, or credit the operator with a negative
session. So `counters` bills from a *billing register* that advances only by plausible steps:

- a step is plausible when 0 <= delta <= max power x elapsed time x `MARGIN` + `RESOLUTION_WH`
  (the meter's own rounding and a poll that arrives a little late);
- an implausible reading is flagged (its `anomaly` names the rule) and its step is not added;
  the next readings continue from the new raw value, so one bad reading costs at most the
  energy of one poll period instead of freezing billing for the rest of the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MARGIN = 1.5  # a connector briefly over its rating, meter class error
RESOLUTION_WH = 10.0  # meters with 0.01 kWh registers step by 10 Wh


class EnergyAnomaly(StrEnum):
    BACKWARDS = "energy_backwards"
    JUMP = "energy_jump"


@dataclass(frozen=True)
class Judged:
    """One reading judged: the energy to bill (Wh) and, if the raw step was refused, why."""

    billing_wh: float
    anomaly: EnergyAnomaly | None
    detail: str = ""


class EnergyGuard:
    """Follows one meter's raw import register and keeps its billing register.

    billing = raw + `offset_wh`; each refused step moves the offset so billing stays put. The
    offset is what `counters` persists, so a restart keeps billing where it was."""

    def __init__(self, max_power_w: float, offset_wh: float = 0.0) -> None:
        if max_power_w <= 0:
            raise ValueError(f"max power must be > 0 W, got {max_power_w}")
        self.max_power_w = max_power_w
        self.offset_wh = offset_wh
        self._last_raw_wh: float | None = None
        self._last_at_s: float | None = None

    def judge(self, raw_wh: float, at_s: float) -> Judged:
        """`raw_wh`: the meter's import register; `at_s`: a monotonic clock, seconds."""
        last_raw, last_at = self._last_raw_wh, self._last_at_s
        self._last_raw_wh, self._last_at_s = raw_wh, at_s
        if last_raw is None or last_at is None:
            return Judged(max(raw_wh + self.offset_wh, 0.0), None)
        delta = raw_wh - last_raw
        elapsed = max(at_s - last_at, 0.0)
        limit = self.max_power_w * elapsed / 3600.0 * MARGIN + RESOLUTION_WH
        if delta < 0:
            anomaly, detail = EnergyAnomaly.BACKWARDS, f"register went back by {-delta:.1f} Wh"
        elif delta > limit:
            anomaly = EnergyAnomaly.JUMP
            detail = (f"register jumped {delta:.1f} Wh in {elapsed:.1f} s; at most {limit:.1f} Wh "
                      f"is possible at {self.max_power_w / 1000:.1f} kW")
        else:
            return Judged(raw_wh + self.offset_wh, None)
        self.offset_wh -= delta
        return Judged(raw_wh + self.offset_wh, anomaly, detail)
