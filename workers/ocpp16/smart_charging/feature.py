"""The Smart Charging feature profile of ocpp16 (`ctx.smart_charging`).

What the handlers call (SetChargingProfile, ClearChargingProfile, GetCompositeSchedule, and
RemoteStartTransaction's chargingProfile) and the background work that keeps the bus limits
right: it follows running transactions (TxProfiles end with theirs), drops profiles that can
never apply again, and republishes at every change of the composite schedule, after every
profile change and every transaction start or stop, whether the CSMS is reachable or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from ocpp.charge_point import snake_to_camel_case
from ocpp.v16.enums import ChargingProfileStatus, ClearChargingProfileStatus

from bus import Bus
from bus.messages import utcnow
from workers.common.station_config import StationConfig, load_from_settings
from workers.ocpp16 import config_keys as keys
from workers.ocpp16.config_keys import ConfigurationStore
from workers.ocpp16.smart_charging.composite import CompositeReport, build_report
from workers.ocpp16.smart_charging.model import (
    ChargingProfile,
    Purpose,
    RateUnit,
    RunningTransaction,
    WireFormatError,
    anchored_at_receipt,
    parse_profile,
)
from workers.ocpp16.smart_charging.profiles import ProfileStore, Wire
from workers.ocpp16.smart_charging.publisher import LimitPublisher
from workers.ocpp16.smart_charging.schedule import (
    PHASE_VOLTAGE_V,
    Evaluation,
    Scope,
    Segment,
    Situation,
    TooManyChanges,
    connector_limit,
    earliest,
    segments,
    station_max,
    station_total,
)
from workers.ocpp16.smart_charging.transactions import TransactionWatcher, running_transactions
from workers.ocpp16.smart_charging.validation import Capacity, profile_problem, tx_profile_problem

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the transaction keys are read
REPUBLISH_S = 30.0  # the limit keys are rewritten at least this often (a key lost in Redis comes back)
PENDING_MARGIN_S = 10.0  # a RemoteStart's TxProfile waits ConnectionTimeOut plus this for its session
GRID_PHASES = 3  # a DC connector and the station count three phases (smartw's rule)


def _ceiling_w(max_power_kw: float, max_current_a: float | None, phases: int) -> float:
    power_w = max_power_kw * 1000
    return power_w if max_current_a is None else min(power_w, max_current_a * phases * PHASE_VOLTAGE_V)


def scopes_of(station: StationConfig) -> tuple[Scope, tuple[Scope, ...]]:
    """The station and each connector with their phases and hardware ceilings (station.toml)."""
    whole = Scope(0, GRID_PHASES, _ceiling_w(station.station.max_power_kw, station.station.max_current_a,
                                             GRID_PHASES))
    connectors = []
    for connector in station.connectors:
        phases = GRID_PHASES if connector.is_dc else connector.ac_phases
        connectors.append(Scope(connector.id, phases,
                                _ceiling_w(connector.max_power_kw, connector.max_current_a, phases)))
    return whole, tuple(connectors)


class SmartCharging:
    def __init__(self, bus: Bus, config: ConfigurationStore, station: Scope,
                 connectors: tuple[Scope, ...]) -> None:
        self._config = config
        self._station = station
        self._connectors = {scope.connector_id: scope for scope in connectors}
        self._store = ProfileStore()
        self._watcher = TransactionWatcher(bus, list(self._connectors))
        self._publisher = LimitPublisher(bus, [0, *self._connectors], self._segments_of)
        self._running: dict[int, RunningTransaction] = {}
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()  # one change of the installed profiles at a time
        self._loaded = False

    def knows_connector(self, connector_id: int) -> bool:
        return connector_id == 0 or connector_id in self._connectors

    def _capacity(self) -> Capacity:
        config = self._config
        return Capacity.from_tokens(config.get(keys.CHARGE_PROFILE_MAX_STACK_LEVEL),
                                    config.get(keys.CHARGING_SCHEDULE_MAX_PERIODS),
                                    config.get(keys.MAX_CHARGING_PROFILES_INSTALLED),
                                    config.get(keys.CHARGING_SCHEDULE_ALLOWED_CHARGING_RATE_UNIT))

    async def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._running = await running_transactions()
            await self._store.load(self._running)
            self._loaded = True

    def _room_for(self, profile: ChargingProfile) -> str | None:
        after = len(self._store) - len(self._store.replaced_by(profile)) + 1
        limit = self._capacity().max_installed
        return None if after <= limit else f"MaxChargingProfilesInstalled ({limit}) reached"

    # ---- SetChargingProfile ----------------------------------------------------------------

    async def set_profile(self, connector_id: int, wire: Wire) -> ChargingProfileStatus:
        """Install a profile from SetChargingProfile (connector known, schema checked)."""
        profile, wire = anchored_at_receipt(parse_profile(wire, connector_id), wire, utcnow())
        async with self._lock:
            await self._ensure_loaded()
            self._running = await running_transactions()  # fresher than the last poll of the keys
            running = self._running.get(connector_id)
            problem = profile_problem(profile, self._capacity()) or self._room_for(profile)
            if problem is None and profile.purpose is Purpose.tx_profile:
                problem = tx_profile_problem(profile, running)
            if problem is not None:
                log.info("SetChargingProfile %s on connector %s rejected: %s", profile.profile_id,
                         connector_id, problem)
                return ChargingProfileStatus.rejected
            session_id = running.session_id if running and profile.purpose is Purpose.tx_profile else None
            await self._store.install(profile, wire, session_id=session_id)
        self._changed.set()
        return ChargingProfileStatus.accepted

    # ---- RemoteStartTransaction's chargingProfile ----------------------------------------

    async def remote_start_profile(self, snake_wire: dict[str, Any],
                                   connector_id: int) -> ChargingProfile | None:
        """Install, before the start, the TxProfile a RemoteStartTransaction brings for the
        transaction about to start on `connector_id` (it waits for that session, §2.7).
        None: refused, the remote start is Rejected."""
        wire = snake_to_camel_case(snake_wire)
        try:
            profile = parse_profile(wire, connector_id)
        except WireFormatError as error:
            log.info("RemoteStartTransaction's chargingProfile cannot be read: %s", error)
            return None
        async with self._lock:
            await self._ensure_loaded()
            problem = profile_problem(profile, self._capacity()) or self._room_for(profile)
            if profile.purpose is not Purpose.tx_profile:
                problem = f"purpose {profile.purpose.value}, not TxProfile"
            if problem is not None:
                log.info("RemoteStartTransaction's chargingProfile %s refused: %s",
                         profile.profile_id, problem)
                return None
            await self._store.install(profile, wire, now=utcnow())
        self._changed.set()
        return profile

    async def remote_start_refused(self, profile: ChargingProfile) -> None:
        """The remote start that brought `profile` was Rejected: the profile goes too."""
        async with self._lock:
            await self._store.remove([profile.profile_id], "its RemoteStartTransaction was rejected")
        self._changed.set()

    # ---- ClearChargingProfile ------------------------------------------------------------

    async def clear(self, profile_id: int | None, connector_id: int | None, purpose: str | None,
                    stack_level: int | None) -> ClearChargingProfileStatus:
        """No criteria: every profile; `profile_id`: that one alone; else all criteria (errata 3.25/3.26)."""
        def wanted(profile: ChargingProfile) -> bool:
            if profile_id is not None:
                return profile.profile_id == profile_id
            return ((connector_id is None or profile.connector_id == connector_id)
                    and (purpose is None or profile.purpose == purpose)
                    and (stack_level is None or profile.stack_level == stack_level))
        async with self._lock:
            await self._ensure_loaded()
            found = self._store.matching(wanted)
            await self._store.remove(found, "ClearChargingProfile")
        if not found:
            return ClearChargingProfileStatus.unknown
        self._changed.set()
        return ClearChargingProfileStatus.accepted

    # ---- GetCompositeSchedule ------------------------------------------------------------

    def _situation(self, at: datetime) -> Situation:
        return Situation(self._store.profiles(), {c: tx.started_at for c, tx in self._running.items()}, at)

    async def composite(self, connector_id: int, duration_s: int,
                        unit: RateUnit | None) -> CompositeReport | None:
        """The composite schedule from now for `duration_s`; None: Rejected."""
        if not self.knows_connector(connector_id) or duration_s < 0:
            return None
        async with self._lock:
            await self._ensure_loaded()
        start = utcnow().replace(microsecond=0)
        situation = self._situation(start)
        scope = self._station if connector_id == 0 else self._connectors[connector_id]
        connectors = tuple(self._connectors.values())

        def evaluate(at: datetime) -> Evaluation:
            if connector_id == 0:
                return station_total(situation, scope, connectors, at)
            return connector_limit(situation, scope, at)
        try:
            found = segments(evaluate, start, start + timedelta(seconds=duration_s))
        except TooManyChanges as error:
            log.warning("GetCompositeSchedule for connector %s over %s s: %s",
                        connector_id, duration_s, error)
            return None
        return build_report(found, start, duration_s, unit, scope)

    # ---- background ----------------------------------------------------------------------

    def _segments_of(self, scope_id: int, at: datetime, until: datetime) -> list[Segment]:
        situation = self._situation(at)
        if scope_id == 0:
            return segments(lambda t: station_max(situation, self._station, t), at, until)
        scope = self._connectors[scope_id]
        return segments(lambda t: connector_limit(situation, scope, t), at, until)

    async def run(self) -> None:
        async with self._lock:
            await self._ensure_loaded()
        self._changed.set()
        wake_at: datetime | None = None
        while True:
            await self._follow_transactions()
            now = utcnow()
            if self._changed.is_set() or (wake_at is not None and now >= wake_at):
                self._changed.clear()
                wake_at = earliest(await self._publisher.publish(now), now + timedelta(seconds=REPUBLISH_S))
            timeout_s = POLL_S if wake_at is None else min(POLL_S, (wake_at - utcnow()).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(timeout_s, 0.0))

    async def _follow_transactions(self) -> None:
        pending_for = timedelta(seconds=self._config.get(keys.CONNECTION_TIME_OUT) + PENDING_MARGIN_S)
        async with self._lock:
            if await self._watcher.changed():
                before, self._running = self._running, await running_transactions()
                if before != self._running:
                    self._changed.set()
            if await self._store.follow(self._running, utcnow(), pending_for):
                self._changed.set()

    @classmethod
    def for_station(cls, bus: Bus, config: ConfigurationStore,
                    station: StationConfig | None = None) -> SmartCharging:
        """For the station of station.toml (STATION_CONFIG) unless another is given."""
        whole, connectors = scopes_of(station or load_from_settings())
        return cls(bus, config, whole, connectors)
