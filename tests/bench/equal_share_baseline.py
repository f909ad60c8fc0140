"""The walking skeleton's power sharing, kept as the baseline of tests/bench/control.py: the
allocation engine (workers/smartw/power_allocation.py) replaced it in smartw, and the bench
prints the engine's CPU time next to this plain equal-share water-filling on the same
connectors (it shares only the station limit and knows no modules)."""

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
