"""Sharing budgets between claims that each have a floor and a cap: the arithmetic under
workers/smartw/power_allocation.py, kept apart so it stays small and exact.

Several budgets hold at once (the station's power, its per-phase current, the power of each
pool of DC modules); each watt of a claim costs `costs[i]` units of budget i. Equal share is
water-filling: every claim gets the same level, clamped to its floor and cap, at the highest
level all budgets allow (found exactly between the breakpoints, not by iteration). First come
gives each claim, in the given order, all it can take of what is left. The caller guarantees
the floors fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Share:
    key: int
    floor_w: float
    cap_w: float
    costs: tuple[float, ...]  # per watt, one per budget

    def at(self, level_w: float) -> float:
        return min(max(level_w, self.floor_w), max(self.cap_w, self.floor_w))


def share(claims: Sequence[Share], budgets: Sequence[float], first_come: bool) -> dict[int, float]:
    if not claims:
        return {}
    if first_come:
        return _in_order(claims, budgets)
    level = _water_level(claims, budgets)
    return {claim.key: claim.at(level) for claim in claims}


def _in_order(claims: Sequence[Share], budgets: Sequence[float]) -> dict[int, float]:
    left = [budget - sum(c.floor_w * c.costs[i] for c in claims) for i, budget in enumerate(budgets)]
    given = {}
    for claim in claims:
        room = [left[i] / cost for i, cost in enumerate(claim.costs) if cost > 0]
        extra = max(min([claim.cap_w - claim.floor_w, *room]), 0.0)
        given[claim.key] = claim.floor_w + extra
        left = [value - extra * cost for value, cost in zip(left, claim.costs, strict=True)]
    return given


def _load(claims: Sequence[Share], level: float, budget_count: int) -> list[float]:
    powers = [(claim.at(level), claim.costs) for claim in claims]
    return [sum(power * costs[i] for power, costs in powers) for i in range(budget_count)]


def _water_level(claims: Sequence[Share], budgets: Sequence[float]) -> float:
    """The highest level at which every budget holds; the load is linear between breakpoints."""
    points = sorted({c.floor_w for c in claims} | {max(c.cap_w, c.floor_w) for c in claims})
    level = points[0]
    for point in points[1:]:
        loads = _load(claims, point, len(budgets))
        if all(load <= budget for load, budget in zip(loads, budgets, strict=True)):
            level = point
            continue
        rising = [c for c in claims if c.floor_w <= level < c.cap_w]
        base = _load(claims, level, len(budgets))
        steps = [point - level]
        for i, budget in enumerate(budgets):
            slope = sum(c.costs[i] for c in rising)
            steps.append((budget - base[i]) / slope if slope > 0 else math.inf)
        return level + max(min(steps), 0.0)
    return level
