"""Availability (OCPP ChangeAvailability) and free mode: what smartw keeps, where, and the rules.

Availability has two layers, as in OCPP 1.6 where connector 0 is the whole station: the
station's own and each connector's; a connector is operative only while both are. Setting a
connector Inoperative never stops its session: while one runs the reply is Scheduled, and since
the status is derived from facts (status.py) the connector turns Unavailable the moment that
session ends, with no Available in between (OCPP C8/F8). Operative again simply clears it.
Free mode: a plugged EV starts at once with the configured idTag (OCPP 1.6 has no free mode;
the reference says nothing, so the idTag is a setting, "FREEMODE" by default).

Why the database: ARCHITECTURE keeps every runtime setting an operator changes there (one schema,
the RuntimeSettings row in webapp/station/models.py, smartw its only writer), it survives a power
cut as a committed row, and the configurator can show it. OCPP requires the availability to
survive a reboot, and smartw must know it before its first control cycle publishes a status (an
Inoperative connector that shows Available after a restart is a known OCPP bug): smartw awaits
`Availability.load` before its loops start (service.py). A change is one transaction (UPDATE, or
INSERT the first time); one the database refuses is not applied. Others read the settings from
the bus (ConnectorState.operative, StationState.operative and free_mode).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

from django.db import DatabaseError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bus.enums import ConnectorStatus
from bus.messages import AvailabilityReply, ChangeAvailabilityRequest, CommandResult, FreeModeRequest
from webapp.station.models import RuntimeSettings
from workers.smartw.connector import ConnectorRuntime
from workers.smartw.status import Fault

log = logging.getLogger(__name__)

STATION = 0  # OCPP connectorId of the whole station
DEFAULT_FREE_MODE_ID_TAG = RuntimeSettings.DEFAULT_FREE_MODE_ID_TAG
NOT_SAVED = "settings_not_saved"  # CommandResult reason: the database refused the change

ConnectorId = Annotated[int, Field(strict=True, ge=1)]  # 0 is the station, kept on its own


class AvailabilitySettings(BaseModel):
    """Everything kept across restarts; the defaults are the factory state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    station_operative: bool = True
    inoperative_connectors: frozenset[ConnectorId] = frozenset()
    free_mode: bool = False
    free_mode_id_tag: str = Field(default=DEFAULT_FREE_MODE_ID_TAG, min_length=1, max_length=20)

    def operative(self, connector_id: int) -> bool:
        return self.station_operative and connector_id not in self.inoperative_connectors

    def with_availability(self, connector_id: int, operative: bool) -> AvailabilitySettings:
        if connector_id == STATION:
            return self.model_copy(update={"station_operative": operative})
        others = self.inoperative_connectors - {connector_id}
        inoperative = others if operative else others | {connector_id}
        return self.model_copy(update={"inoperative_connectors": inoperative})


class SettingsRow:
    """The settings in the database (the one RuntimeSettings row). A missing row is the factory
    state; an unreadable one too (logged), so a damaged value cannot keep the station out of
    service. A database that cannot be read at all raises: smartw then fails its start (and is
    restarted) rather than publish a state it does not know."""

    async def load(self) -> AvailabilitySettings:
        row = await RuntimeSettings.objects.filter(pk=RuntimeSettings.ONE).afirst()
        if row is None:
            return AvailabilitySettings()
        try:
            return AvailabilitySettings(
                station_operative=row.station_operative, inoperative_connectors=row.inoperative_connectors,
                free_mode=row.free_mode, free_mode_id_tag=row.free_mode_id_tag)
        except ValidationError as error:
            log.error("availability settings unreadable (%s); every connector operative, free mode off",
                      error)
            return AvailabilitySettings()

    async def save(self, settings: AvailabilitySettings) -> None:
        """Write the whole row in one transaction; raises DatabaseError."""
        await RuntimeSettings.objects.aupdate_or_create(pk=RuntimeSettings.ONE, defaults={
            "station_operative": settings.station_operative,
            "inoperative_connectors": sorted(settings.inoperative_connectors),
            "free_mode": settings.free_mode,
            "free_mode_id_tag": settings.free_mode_id_tag,
        })


class Availability:
    """The settings applied to smartw's connectors, and the commands that change them."""

    def __init__(self, store: SettingsRow, connectors: dict[int, ConnectorRuntime]) -> None:
        """The factory state until `load`."""
        self._store = store
        self._connectors = connectors
        self._saving = asyncio.Lock()  # one change at a time: each builds on the last one kept
        self.settings = AvailabilitySettings()

    @classmethod
    def from_settings(cls, connectors: dict[int, ConnectorRuntime]) -> Availability:
        """smartw's: kept in the database."""
        return cls(SettingsRow(), connectors)

    async def load(self) -> None:
        """Apply the kept settings; smartw awaits it before its first control cycle."""
        async with self._saving:
            self._apply(await self._store.load())

    @property
    def free_mode_id_tag(self) -> str | None:
        """The idTag a free session starts with; None while free mode is off."""
        return self.settings.free_mode_id_tag if self.settings.free_mode else None

    def station_status(self, fault: Fault | None) -> ConnectorStatus:
        """Connector 0's OCPP status: Faulted wins; Unavailable once Inoperative and no session
        runs anywhere (a station change waits for every session, as a connector's for its own)."""
        if fault is not None:
            return ConnectorStatus.FAULTED
        running = any(c.session is not None for c in self._connectors.values())
        if not self.settings.station_operative and not running:
            return ConnectorStatus.UNAVAILABLE
        return ConnectorStatus.AVAILABLE

    async def change(self, request: ChangeAvailabilityRequest) -> AvailabilityReply:
        """ChangeAvailability: Rejected for an unknown connector or when it cannot be kept;
        Inoperative where a session runs (or is starting or stopping) is Scheduled."""
        where = "station" if request.connector_id == STATION else f"connector {request.connector_id}"
        affected = self._affected(request.connector_id)
        if affected is None:
            log.warning("availability change for unknown connector %s rejected", request.connector_id)
            return AvailabilityReply(status="Rejected")
        async with self._saving:
            kept = await self._keep(self.settings.with_availability(request.connector_id, request.operative))
        status: Literal["Accepted", "Rejected", "Scheduled"] = "Accepted"
        if not kept:
            status = "Rejected"
        elif not request.operative and any(c.session is not None or c.lock.locked() for c in affected):
            status = "Scheduled"
        log.info("%s set %s: %s", where, "Operative" if request.operative else "Inoperative", status)
        return AvailabilityReply(status=status)

    async def set_free_mode(self, request: FreeModeRequest) -> CommandResult:
        async with self._saving:
            id_tag = request.id_tag or self.settings.free_mode_id_tag
            wanted = self.settings.model_copy(update={"free_mode": request.enabled,
                                                      "free_mode_id_tag": id_tag})
            if not await self._keep(wanted):
                return CommandResult(accepted=False, reason=NOT_SAVED)
        log.info("free mode %s (idTag %s)", "on" if request.enabled else "off", id_tag)
        return CommandResult(accepted=True, reason="free_mode_on" if request.enabled else "free_mode_off")

    def _affected(self, connector_id: int) -> list[ConnectorRuntime] | None:
        if connector_id == STATION:
            return list(self._connectors.values())
        connector = self._connectors.get(connector_id)
        return None if connector is None else [connector]

    async def _keep(self, wanted: AvailabilitySettings) -> bool:
        """Apply, then store; on a write failure the previous settings come back and the change is
        refused (applied first, so a caller that gives up mid-write cannot leave the database and
        the connectors apart)."""
        previous = self.settings
        if wanted == previous:
            return True
        self._apply(wanted)
        try:
            await self._store.save(wanted)
        except DatabaseError as error:
            log.error("availability settings not saved (%s); change refused", error)
            self._apply(previous)
            return False
        return True

    def _apply(self, settings: AvailabilitySettings) -> None:
        self.settings = settings
        for connector in self._connectors.values():
            connector.operative = settings.operative(connector.id)
            if not connector.operative and connector.session is None:
                connector.pending = None  # a start waiting for a card or a plug is cancelled
