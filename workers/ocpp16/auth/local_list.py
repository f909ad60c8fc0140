"""The local authorization list (OCPP 1.6 §3.5.2, §5.10, §5.15; ocpp16.md §2.15).

Only SendLocalList changes it: a Full update replaces the list, a Differential one adds or
replaces the entries that carry an idTagInfo and deletes those that do not. The entries
(table LocalAuthEntry) and the version (OcppState `local_list_version`) change together in one
database transaction, so a reboot finds either the old list or the new one, never a mix.

Answers: Accepted; VersionMismatch when a Differential update's listVersion is not above the
current one (the CSMS then sends a Full list); Failed, changing nothing, when the message
cannot be applied: listVersion below 1, more entries than SendLocalListMaxLength, a list that
would exceed LocalAuthListMaxLength, a Full entry without idTagInfo, an empty or repeated idTag
(repeated case-insensitively), an unreadable expiryDate. GetLocalListVersion is 0 while the
list is empty (whatever version emptied it). Synchronous ORM code: call it through `txqueue.db`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from ocpp.v16.enums import UpdateStatus, UpdateType

from bus.enums import AuthorizationStatus
from webapp.station.models import LocalAuthEntry, OcppState
from workers.ocpp16.auth.idtags import IdTagInfo, InvalidIdTagInfo, id_tag_key

log = logging.getLogger(__name__)

LIST_VERSION_STATE = "local_list_version"  # OcppState name
SQL_BATCH = 500  # SQLite limits the variables of one query


class ListUpdateFailed(ValueError):
    """A SendLocalList that cannot be applied (answered Failed, nothing changes)."""


@dataclass(frozen=True)
class ListEntry:
    id_tag: str
    info: IdTagInfo | None  # None: delete the tag (Differential only)

    @property
    def key(self) -> str:
        return id_tag_key(self.id_tag)


@dataclass(frozen=True)
class ListLimits:
    per_message: int  # SendLocalListMaxLength
    total: int  # LocalAuthListMaxLength


@dataclass(frozen=True)
class ListUpdate:
    """The outcome of a SendLocalList: the status to answer, why, and the tags now listed."""

    status: UpdateStatus
    reason: str = ""
    listed_keys: tuple[str, ...] = ()


def parse_entries(raw: Sequence[Mapping[str, Any]], update_type: UpdateType) -> list[ListEntry]:
    """The entries of a SendLocalList (the library's snake_case dicts), or ListUpdateFailed."""
    entries: list[ListEntry] = []
    seen: set[str] = set()
    for item in raw:
        id_tag = str(item.get("id_tag") or "")
        if not id_tag.strip():
            raise ListUpdateFailed("an entry has an empty idTag")
        entry_info = item.get("id_tag_info")
        if entry_info is None and update_type is UpdateType.full:
            raise ListUpdateFailed(f"idTag {id_tag}: a Full update needs its idTagInfo")
        try:
            entry = ListEntry(id_tag, None if entry_info is None else IdTagInfo.from_ocpp(entry_info))
        except InvalidIdTagInfo as error:
            raise ListUpdateFailed(f"idTag {id_tag}: {error}") from None
        if entry.key in seen:
            raise ListUpdateFailed(f"idTag {id_tag} appears twice")
        seen.add(entry.key)
        entries.append(entry)
    return entries


def _row(entry: ListEntry, info: IdTagInfo) -> LocalAuthEntry:
    return LocalAuthEntry(id_tag_key=entry.key, id_tag=entry.id_tag, status=str(info.status),
                          expiry_date=info.expiry_date, parent_id_tag=info.parent_id_tag or "")


class LocalList:
    def version(self) -> int:
        if not LocalAuthEntry.objects.exists():
            return 0
        row = OcppState.objects.filter(name=LIST_VERSION_STATE).first()
        return 0 if row is None else int(row.value)

    def lookup(self, id_tag: str) -> IdTagInfo | None:
        row = LocalAuthEntry.objects.filter(id_tag_key=id_tag_key(id_tag)).first()
        if row is None:
            return None
        return IdTagInfo(AuthorizationStatus(row.status), row.expiry_date, row.parent_id_tag or None)

    def contains(self, id_tag: str) -> bool:
        return LocalAuthEntry.objects.filter(id_tag_key=id_tag_key(id_tag)).exists()

    def update(self, list_version: int, update_type: UpdateType,
               raw_entries: Sequence[Mapping[str, Any]], limits: ListLimits) -> ListUpdate:
        """Apply a SendLocalList, all or nothing."""
        try:
            if list_version < 1:
                raise ListUpdateFailed(f"listVersion {list_version} is below 1")
            if len(raw_entries) > limits.per_message:
                raise ListUpdateFailed(f"{len(raw_entries)} entries, SendLocalListMaxLength is "
                                       f"{limits.per_message}")
            entries = parse_entries(raw_entries, update_type)
            with transaction.atomic():
                current = self.version()
                if update_type is UpdateType.differential and list_version <= current:
                    return ListUpdate(UpdateStatus.version_mismatch,
                                      f"listVersion {list_version} is not above {current}")
                self._write(update_type, entries, limits.total)
                OcppState.objects.update_or_create(name=LIST_VERSION_STATE, defaults={"value": list_version})
        except ListUpdateFailed as error:
            return ListUpdate(UpdateStatus.failed, str(error))
        listed = tuple(entry.key for entry in entries if entry.info is not None)
        return ListUpdate(UpdateStatus.accepted, listed_keys=listed)

    def _write(self, update_type: UpdateType, entries: list[ListEntry], total: int) -> None:
        if update_type is UpdateType.full:
            LocalAuthEntry.objects.all().delete()
        else:
            keys = [entry.key for entry in entries]
            for start in range(0, len(keys), SQL_BATCH):
                LocalAuthEntry.objects.filter(id_tag_key__in=keys[start:start + SQL_BATCH]).delete()
        LocalAuthEntry.objects.bulk_create([_row(entry, entry.info) for entry in entries if entry.info],
                                           batch_size=SQL_BATCH)
        if LocalAuthEntry.objects.count() > total:
            raise ListUpdateFailed(f"the list would exceed LocalAuthListMaxLength ({total})")
