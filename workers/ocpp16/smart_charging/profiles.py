"""Installed charging profiles: in memory for the schedule, persisted in ChargingProfileRecord
so they survive a reboot (errata 3.37). ocpp16 is the table's only writer.

Replacement (OCPP 1.6 §5.16): a new profile replaces the one with the same chargingProfileId
and the one with the same stackLevel and purpose on the same connector.

A TxProfile belongs to one transaction (§3.13.4: it ends with it). `follow()` keeps that true
against the transactions running now: a TxProfile set while a transaction runs is bound to its
session and removed when that session is no longer running on the connector; one that came with
RemoteStartTransaction waits (pending) for the next session on its connector and is dropped if
none starts in time. After a restart a TxProfile survives only if a transaction still runs on
its connector (and its transactionId, when both are known, is that one).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction

from webapp.station.models import ChargingProfileRecord
from workers.ocpp16.smart_charging.model import (
    ChargingProfile,
    Kind,
    Purpose,
    RunningTransaction,
    WireFormatError,
    parse_profile,
)
from workers.ocpp16.txqueue import db

log = logging.getLogger(__name__)

Wire = dict[str, Any]


def plain_json(wire: Mapping[str, Any]) -> Wire:
    """The wire object with Decimals as numbers, as the JSON column stores it."""
    return json.loads(json.dumps(wire, default=lambda value: float(value) if isinstance(value, Decimal)
                                 else str(value)))


def _rows() -> list[tuple[Wire, int]]:
    return [(row.profile, row.connector_id) for row in ChargingProfileRecord.objects.all()]


def _save(profile: ChargingProfile, wire: Wire, replaced: list[int]) -> None:
    with transaction.atomic():
        ChargingProfileRecord.objects.filter(charging_profile_id__in=replaced).delete()
        ChargingProfileRecord.objects.create(
            charging_profile_id=profile.profile_id, connector_id=profile.connector_id,
            purpose=profile.purpose.value, stack_level=profile.stack_level,
            transaction_id=profile.transaction_id, profile=wire)


def _delete(profile_ids: list[int]) -> None:
    ChargingProfileRecord.objects.filter(charging_profile_id__in=profile_ids).delete()


def spent(profile: ChargingProfile, now: datetime) -> bool:
    """True when the profile can never be in force again."""
    if profile.valid_to is not None and profile.valid_to <= now:
        return True
    schedule = profile.schedule
    return (profile.kind is Kind.absolute and schedule.start is not None and schedule.duration_s is not None
            and schedule.start + timedelta(seconds=schedule.duration_s) <= now)


def _survives_restart(profile: ChargingProfile, running: RunningTransaction | None) -> bool:
    if running is None:
        return False
    ids = (profile.transaction_id, running.transaction_id)
    return None in ids or ids[0] == ids[1]


class ProfileStore:
    def __init__(self) -> None:
        self._installed: dict[int, ChargingProfile] = {}
        self._sessions: dict[int, str | None] = {}  # TxProfile id -> its session; None: pending
        self._pending_since: dict[int, datetime] = {}

    def profiles(self) -> tuple[ChargingProfile, ...]:
        return tuple(self._installed.values())

    def __len__(self) -> int:
        return len(self._installed)

    async def load(self, running: Mapping[int, RunningTransaction]) -> None:
        """Read the table; drop what cannot be used any more (TxProfiles of ended transactions,
        rows that no longer parse)."""
        dropped: list[int] = []
        for wire, connector_id in await db(_rows):
            try:
                profile = parse_profile(wire, connector_id)
            except (WireFormatError, KeyError, ValueError, TypeError) as error:
                log.error("stored charging profile %s cannot be read (%s); deleted",
                          wire.get("chargingProfileId"), error)
                dropped.append(wire.get("chargingProfileId", -1))
                continue
            tx = running.get(connector_id)
            if profile.purpose is Purpose.tx_profile and not _survives_restart(profile, tx):
                dropped.append(profile.profile_id)
                continue
            self._installed[profile.profile_id] = profile
            if tx is not None and profile.purpose is Purpose.tx_profile:
                self._sessions[profile.profile_id] = tx.session_id
        if dropped:
            log.info("charging profiles %s dropped at start-up", dropped)
            await db(_delete, dropped)
        log.info("%d charging profile(s) installed", len(self._installed))

    def replaced_by(self, profile: ChargingProfile) -> list[int]:
        return [p.profile_id for p in self._installed.values()
                if p.profile_id == profile.profile_id
                or (p.stack_level, p.purpose, p.connector_id)
                == (profile.stack_level, profile.purpose, profile.connector_id)]

    async def install(self, profile: ChargingProfile, wire: Wire, *, session_id: str | None = None,
                      now: datetime | None = None) -> None:
        """Persist, then use. A TxProfile gets `session_id`, or waits for one from `now`."""
        replaced = self.replaced_by(profile)
        await db(_save, profile, plain_json(wire), replaced)
        self._forget(replaced)
        self._installed[profile.profile_id] = profile
        if profile.purpose is Purpose.tx_profile:
            self._sessions[profile.profile_id] = session_id
            if session_id is None and now is not None:
                self._pending_since[profile.profile_id] = now
        log.info("charging profile %s installed (%s, connector %s, stack level %s)%s", profile.profile_id,
                 profile.purpose.value, profile.connector_id, profile.stack_level,
                 f", replacing {replaced}" if replaced else "")

    def matching(self, keep: Callable[[ChargingProfile], bool]) -> list[int]:
        return [p.profile_id for p in self._installed.values() if keep(p)]

    async def remove(self, profile_ids: Iterable[int], why: str) -> None:
        ids = [i for i in profile_ids if i in self._installed]
        if not ids:
            return
        await db(_delete, ids)
        self._forget(ids)
        log.info("charging profile(s) %s removed: %s", ids, why)

    def _forget(self, profile_ids: Iterable[int]) -> None:
        for profile_id in profile_ids:
            self._installed.pop(profile_id, None)
            self._sessions.pop(profile_id, None)
            self._pending_since.pop(profile_id, None)

    def _ended(self, profile_id: int, session: str | None, tx: RunningTransaction | None, now: datetime,
               pending_for: timedelta) -> bool:
        if session is None:  # pending, and no session started on its connector yet
            return now - self._pending_since.get(profile_id, now) > pending_for
        return tx is None or tx.session_id != session

    async def follow(self, running: Mapping[int, RunningTransaction], now: datetime,
                     pending_for: timedelta) -> bool:
        """Bind pending TxProfiles to the session that started, remove those whose session
        ended, whose wait ran out, or that can never apply again. True if anything changed."""
        ended, expired, changed = [], [], False
        for profile in self.profiles():
            if spent(profile, now):
                expired.append(profile.profile_id)
            if profile.purpose is not Purpose.tx_profile:
                continue
            session, tx = self._sessions.get(profile.profile_id), running.get(profile.connector_id)
            if session is None and tx is not None:
                self._sessions[profile.profile_id] = tx.session_id
                self._pending_since.pop(profile.profile_id, None)
                changed = True
                log.info("TxProfile %s now applies to session %s on connector %s",
                         profile.profile_id, tx.session_id, profile.connector_id)
            elif self._ended(profile.profile_id, session, tx, now, pending_for):
                ended.append(profile.profile_id)
        await self.remove(ended, "their transaction ended (or never started)")
        await self.remove(expired, "they can never apply again")
        return changed or bool(ended or expired)
