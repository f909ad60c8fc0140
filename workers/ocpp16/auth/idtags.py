"""IdTags and what the CSMS says about them (IdTagInfo, OCPP 1.6 §7.27-7.28).

An idTag is a CiString20: compared case-insensitively (errata 3.73/3.74) and otherwise opaque
(never assume hex). Both stores index it by `id_tag_key`. IdTagInfo arrives as the `ocpp`
library's snake_case dict (a CALLRESULT's `id_tag_info`, a SendLocalList entry); an expiry
date that cannot be read is an error for a list entry (the update fails) and is dropped from
a CSMS answer (the status still counts).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bus.enums import AuthorizationStatus

log = logging.getLogger(__name__)

ID_TAG_MAX_CHARS = 20  # CiString20


class InvalidIdTagInfo(ValueError):
    """An IdTagInfo (or an idTag) that cannot be used."""


def id_tag_key(id_tag: str) -> str:
    """The case-insensitive form both stores index by. Case folding may lengthen a few
    non-ASCII letters (ß -> ss); such a tag falls back to lower case to fit the column."""
    folded = id_tag.casefold()
    return folded if len(folded) <= ID_TAG_MAX_CHARS else id_tag.lower()


def same_id_tag(first: str | None, second: str | None) -> bool:
    if first is None or second is None:
        return first is second
    return id_tag_key(first) == id_tag_key(second)


def parse_time(text: str) -> datetime:
    """An OCPP dateTime (ISO 8601); without an offset it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidIdTagInfo(f"expiryDate {text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class IdTagInfo:
    status: AuthorizationStatus
    expiry_date: datetime | None = None
    parent_id_tag: str | None = None

    @classmethod
    def from_ocpp(cls, data: Mapping[str, Any], *, strict: bool = True) -> IdTagInfo:
        """From the library's snake_case dict. `strict=False` (a CSMS answer) drops an
        unreadable expiry date instead of refusing the whole answer."""
        try:
            status = AuthorizationStatus(data.get("status"))
        except ValueError:
            raise InvalidIdTagInfo(f"status {data.get('status')!r} is not an AuthorizationStatus") from None
        expiry = data.get("expiry_date")
        try:
            expiry_date = parse_time(expiry) if expiry is not None else None
        except InvalidIdTagInfo:
            if strict:
                raise
            log.warning("CSMS sent an unreadable expiryDate %r; ignored", expiry)
            expiry_date = None
        return cls(status, expiry_date, data.get("parent_id_tag") or None)

    def status_at(self, now: datetime) -> AuthorizationStatus:
        """Accepted turns Expired once the expiry date has passed."""
        if self.status is AuthorizationStatus.ACCEPTED and self.expiry_date is not None \
                and self.expiry_date <= now:
            return AuthorizationStatus.EXPIRED
        return self.status

    def valid_at(self, now: datetime) -> bool:
        return self.status_at(now) is AuthorizationStatus.ACCEPTED

    def agrees_with(self, other: IdTagInfo, now: datetime) -> bool:
        """Same verdict and same group (LocalListConflict is reported when they differ)."""
        return self.status_at(now) is other.status_at(now) and same_id_tag(self.parent_id_tag,
                                                                           other.parent_id_tag)
