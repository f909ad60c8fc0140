"""The table of station services chargepoint runs, in start order.

Each service is `python -m <module>`; its name is its heartbeat key (contract.HEARTBEAT).
The table is data: adding a service is one line here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceSpec:
    """One service process: `name` = heartbeat key, `module` run with `python -m`."""

    name: str
    module: str
    sim_only: bool = False
    gate: bool = False  # at start-up, the services after it wait until it is ready


SERVICES: tuple[ServiceSpec, ...] = (
    # The simulator goes first so the devices answer when the drivers start polling.
    ServiceSpec("sim", "workers.sim", sim_only=True, gate=True),
    ServiceSpec("counters", "workers.counters"),
    ServiceSpec("smartw", "workers.smartw"),
    ServiceSpec("ocpp16", "workers.ocpp16"),
    ServiceSpec("rfid", "workers.rfid"),
    ServiceSpec("diag", "workers.diag"),
    ServiceSpec("jobs", "workers.jobs"),
    ServiceSpec("web", "webapp"),
)


class ServiceSelectionError(ValueError):
    """`--only` names a service that does not exist, or the simulator without `--sim`."""


def select(*, sim: bool, only: Sequence[str] | None = None) -> tuple[ServiceSpec, ...]:
    """The services to run: every one (the simulator only with `sim`), or the `only` subset."""
    known = {spec.name: spec for spec in SERVICES}
    if only is None:
        return tuple(spec for spec in SERVICES if sim or not spec.sim_only)
    wanted = [name.strip() for name in only if name.strip()]
    unknown = [name for name in wanted if name not in known]
    if unknown or not wanted:
        raise ServiceSelectionError(
            f"--only: unknown service(s) {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(known)}")
    if not sim and any(known[name].sim_only for name in wanted):
        raise ServiceSelectionError("--only: the simulator ('sim') runs only with --sim")
    return tuple(spec for spec in SERVICES if spec.name in wanted)


def missing_modules(specs: Sequence[ServiceSpec]) -> list[str]:
    """Modules that `python -m` could not run (a broken installation), checked before start."""
    missing = []
    for spec in specs:
        target = spec.module
        found = importlib.util.find_spec(target)
        if found is not None and found.submodule_search_locations is not None:
            found = importlib.util.find_spec(f"{target}.__main__")
        if found is None:
            missing.append(target)
    return missing
