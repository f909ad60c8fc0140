"""The external power limits smartw obeys: what ocpp16 publishes from the CSMS's charging
profiles and what the operator sets, read from the bus every cycle in one round trip and
turned into power_allocation's inputs (which are pure: no I/O, no clock of their own).

Rules, in one place so the writers (ocpp16, the configurator, `manage.py limit`) know them:
- Clock: the allocation's `now` is epoch seconds (`time.time()`), so an OCPP limit's
  `ExternalLimit.expires_at` is its `expires_at.timestamp()` and the allocation drops it at
  the right moment between two reads.
- A limit in amperes per phase counts as W with 230 V per phase: an AC connector's wired
  phases, three for a DC connector and for the station (their grid side). A limit that
  gives both W and A is held to the lower of the two.
- An expired limit is ignored. The key's TTL normally removes it at the same moment; this
  covers a writer's clock ahead of ours and a writer that set no TTL. Logged once, at INFO.
- A malformed key (not JSON, not a ChargingLimit, or a limit filed under another connector's
  key or the other writer's key) is ignored and logged once at ERROR: the other limits
  still apply, and one writer's bug cannot stop the station.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bus import Bus, contract
from bus.client import KeyRead
from bus.contract import KeySpec
from bus.messages import ChargingLimit
from workers.common.station_config import ConnectorConfig
from workers.smartw.power_allocation import ConnectorInput, ExternalLimit, StationInput

log = logging.getLogger(__name__)

STATION_ID = 0  # connector_id of a station-wide limit (OCPP's connector 0)
PHASE_VOLTAGE_V = 230.0  # phase to neutral, for limits given in A per phase
GRID_PHASES = 3  # a DC connector and the station draw from three phases
LIMIT_KEYS: tuple[KeySpec[ChargingLimit], ...] = (contract.OCPP_LIMIT, contract.OPERATOR_LIMIT)


@dataclass(frozen=True)
class ScopeLimits:
    """The external limits on one connector or on the whole station, as the allocation takes them."""

    ocpp_limit: ExternalLimit | None = None
    operator_limit_w: float | None = None


NO_LIMITS = ScopeLimits()


@dataclass(frozen=True)
class StationLimits:
    """Every external limit in force at one read."""

    station: ScopeLimits
    connectors: Mapping[int, ScopeLimits]  # every connector of station.toml, limited or not

    def apply_to_station(self, station: StationInput) -> StationInput:
        return replace(station, ocpp_limit=self.station.ocpp_limit,
                       operator_limit_w=self.station.operator_limit_w)

    def apply_to_connector(self, connector: ConnectorInput) -> ConnectorInput:
        limits = self.connectors.get(connector.connector_id, NO_LIMITS)
        return replace(connector, ocpp_limit=limits.ocpp_limit, operator_limit_w=limits.operator_limit_w)


def limit_in_w(limit: ChargingLimit, phases: int) -> float:
    """The limit in W: the lower of its W value and its A per phase x phases x 230 V."""
    amps_w = None if limit.limit_a is None else limit.limit_a * phases * PHASE_VOLTAGE_V
    return min(w for w in (limit.limit_w, amps_w) if w is not None)


def phases_by_scope(connectors: Sequence[ConnectorConfig]) -> dict[int, int]:
    """How many phases an A-per-phase limit counts, per connector id and for the station (0)."""
    return {STATION_ID: GRID_PHASES} | {
        c.id: GRID_PHASES if c.is_dc else c.ac_phases for c in connectors}


class LimitReader:
    """Reads the station's external limits, one MGET per read. Remembers which expired or
    malformed keys it has reported, so a problem is logged once rather than every cycle (and
    again if it comes back after it was gone)."""

    def __init__(self, connectors: Sequence[ConnectorConfig]) -> None:
        self._phases = phases_by_scope(connectors)
        self._keys = [(spec, {"connector_id": scope}) for scope in self._phases for spec in LIMIT_KEYS]
        self._reported: set[str] = set()

    async def read(self, bus: Bus, *, now: datetime) -> StationLimits:
        """The limits in force at `now` (aware UTC). A Redis error propagates: no bus, no read."""
        reads = await bus.get_many(self._keys)
        problems: dict[str, tuple[int, str]] = {}
        found: dict[int, dict[KeySpec[ChargingLimit], ChargingLimit]] = {scope: {} for scope in self._phases}
        for (spec, params), read in zip(self._keys, reads, strict=True):
            scope = params["connector_id"]
            limit = _usable(spec, scope, read, now, problems)
            if limit is not None:
                found[scope][spec] = limit
        self._report(problems)
        scopes = {scope: self._scope_limits(scope, limits) for scope, limits in found.items()}
        return StationLimits(station=scopes.pop(STATION_ID), connectors=scopes)

    def _scope_limits(self, scope: int,
                      limits: Mapping[KeySpec[ChargingLimit], ChargingLimit]) -> ScopeLimits:
        ocpp, operator = limits.get(contract.OCPP_LIMIT), limits.get(contract.OPERATOR_LIMIT)
        phases = self._phases[scope]
        return ScopeLimits(
            ocpp_limit=None if ocpp is None else ExternalLimit(
                limit_in_w(ocpp, phases), ocpp.source.value,
                None if ocpp.expires_at is None else ocpp.expires_at.timestamp()),
            operator_limit_w=None if operator is None else limit_in_w(operator, phases),
        )

    def _report(self, problems: Mapping[str, tuple[int, str]]) -> None:
        for problem, (level, text) in problems.items():
            if problem not in self._reported:
                log.log(level, "%s", text)
        self._reported = set(problems)


def _usable(spec: KeySpec[ChargingLimit], scope: int, read: KeyRead[ChargingLimit], now: datetime,
            problems: dict[str, tuple[int, str]]) -> ChargingLimit | None:
    """The key's limit if it applies now; otherwise None, with the reason added to `problems`
    (a stable identity -> log level and line)."""
    if read.error is not None:
        problems[f"{read.name}:invalid:{read.error}"] = (
            logging.ERROR, f"bus key {read.name} is not a valid charging limit, ignored: {read.error}")
        return None
    limit = read.value
    if limit is None:
        return None
    misfiled = _misfiled(spec, scope, limit)
    if misfiled:
        problems[f"{read.name}:misfiled:{limit.model_dump_json(exclude={'set_at'})}"] = (
            logging.ERROR, f"bus key {read.name} holds {misfiled}, ignored: {_describe(limit)}")
        return None
    if not limit.active(now):
        problems[f"{read.name}:expired:{limit.expires_at}"] = (
            logging.INFO, f"{_describe(limit)} on {read.name} expired, ignored")
        return None
    return limit


def _misfiled(spec: KeySpec[ChargingLimit], scope: int, limit: ChargingLimit) -> str:
    """Why a valid limit does not belong under this key ('' when it does)."""
    if limit.connector_id != scope:
        return f"a limit for connector {limit.connector_id}"
    if limit.source.is_ocpp != (spec is contract.OCPP_LIMIT):
        return f"a limit from source {limit.source.value}"
    return ""


def _describe(limit: ChargingLimit) -> str:
    values = [f"{v:g} {unit}" for v, unit in ((limit.limit_w, "W"), (limit.limit_a, "A/phase"))
                         if v is not None]
    expiry = "no expiry" if limit.expires_at is None else f"expires {limit.expires_at.isoformat()}"
    return f"{limit.source.value} limit {' and '.join(values)} ({expiry})"
