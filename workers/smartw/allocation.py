"""Sharing the station's power between connectors that charge at the same time.

Pure functions, so the safety invariant (the sum never exceeds the station limit, no
connector exceeds its own limit) is checked by property-based tests. The skeleton's policy
is equal share with redistribution: a connector that needs less than its share leaves the
rest to the others. smartw's control cycle still uses it; the full engine (power modules and
their contactor matrix, minimums, OCPP and operator limits, per-phase current, station meter
headroom, dwell) is workers/smartw/power_allocation.py, which replaces it once wired.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PowerRequest:
    """What one charging connector could use now."""

    connector_id: int
    connector_limit_w: float  # the connector's own rating, W
    demand_w: float  # what the EV asks for, W (its maximum power now)


def allocate(station_limit_w: float, requests: list[PowerRequest]) -> dict[int, float]:
    """Water-filling: every connector gets min(its need, an equal share of what is left)."""
    remaining = max(station_limit_w, 0.0)
    needs = {r.connector_id: max(min(r.connector_limit_w, r.demand_w), 0.0) for r in requests}
    allocation = dict.fromkeys(needs, 0.0)
    open_ids = sorted(needs, key=lambda cid: needs[cid])
    while open_ids and remaining > 1e-9:
        share = remaining / len(open_ids)
        smallest = open_ids[0]
        if needs[smallest] <= share:
            allocation[smallest] = needs[smallest]
            remaining -= needs[smallest]
            open_ids.pop(0)
            continue
        for cid in open_ids:
            allocation[cid] = share
        remaining = 0.0
    return allocation
