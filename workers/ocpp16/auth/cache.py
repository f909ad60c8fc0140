"""The authorization cache (OCPP 1.6 §3.5.1; ocpp16.md §2.4): the CSMS's last IdTagInfo per
idTag, kept in table AuthCacheEntry so it survives a reboot or a power cut.

Bounded: beyond `max_entries`, entries that are no longer valid go first (refused, or past
their expiry date), then the least recently updated ones. Tags of the local list never enter
(the caller checks the list; `forget` drops tags that join it). Synchronous ORM code: call it
through `txqueue.db`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from bus.enums import AuthorizationStatus
from webapp.station.models import AuthCacheEntry
from workers.ocpp16.auth.idtags import IdTagInfo, id_tag_key

log = logging.getLogger(__name__)

AUTH_CACHE_MAX_ENTRIES = 1_000  # a station sees far fewer distinct cards between two clears
SQL_BATCH = 500


def _info(row: AuthCacheEntry) -> IdTagInfo:
    return IdTagInfo(AuthorizationStatus(row.status), row.expiry_date, row.parent_id_tag or None)


class AuthCache:
    def __init__(self, max_entries: int = AUTH_CACHE_MAX_ENTRIES) -> None:
        self.max_entries = max_entries

    def lookup(self, id_tag: str) -> IdTagInfo | None:
        row = AuthCacheEntry.objects.filter(id_tag_key=id_tag_key(id_tag)).first()
        return None if row is None else _info(row)

    def store(self, id_tag: str, info: IdTagInfo, now: datetime) -> None:
        """Insert or replace the tag's entry, then evict beyond the bound."""
        with transaction.atomic():
            AuthCacheEntry.objects.update_or_create(
                id_tag_key=id_tag_key(id_tag),
                defaults={"id_tag": id_tag, "status": str(info.status), "expiry_date": info.expiry_date,
                          "parent_id_tag": info.parent_id_tag or ""})
            self._evict(now)

    def _evict(self, now: datetime) -> None:
        excess = AuthCacheEntry.objects.count() - self.max_entries
        if excess <= 0:
            return
        not_valid = ~Q(status=AuthorizationStatus.ACCEPTED) | Q(expiry_date__lte=now)
        victims = list(AuthCacheEntry.objects.filter(not_valid).order_by("updated_at", "id")
                       .values_list("id", flat=True)[:excess])
        if len(victims) < excess:
            victims += list(AuthCacheEntry.objects.exclude(id__in=victims).order_by("updated_at", "id")
                            .values_list("id", flat=True)[:excess - len(victims)])
        AuthCacheEntry.objects.filter(id__in=victims).delete()
        log.info("authorization cache full: %d entries evicted", len(victims))

    def forget(self, id_tag_keys: Iterable[str]) -> None:
        keys = list(id_tag_keys)
        for start in range(0, len(keys), SQL_BATCH):  # SQLite limits the variables of one query
            AuthCacheEntry.objects.filter(id_tag_key__in=keys[start:start + SQL_BATCH]).delete()

    def clear(self) -> int:
        deleted, _ = AuthCacheEntry.objects.all().delete()
        return deleted
