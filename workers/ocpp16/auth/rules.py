"""The authorization rules as pure functions (OCPP 1.6 §3.5; ocpp16.md §2.4).

What the station knows locally about an idTag is at most one `Known` answer: the local
list's entry if the list is enabled and holds the tag (the list wins over the cache), else the
cache's. Online, a locally valid tag starts at once only with LocalPreAuthorize; everything
else asks the CSMS (also a cached tag that is not valid: its status may have changed).
Offline (or when the CSMS gives no answer):

- a known tag that is not valid (listed with a status other than Accepted, expired, or cached
  as refused) is refused with that status, even with AllowOfflineTxForUnknownId;
- a known valid tag is accepted with LocalAuthorizeOffline, and also with
  AllowOfflineTxForUnknownId (refusing a known-good tag that an unknown one would pass makes
  no sense);
- an unknown tag is accepted only with AllowOfflineTxForUnknownId.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bus.enums import AuthorizationStatus
from workers.ocpp16.auth.idtags import IdTagInfo


class Source(StrEnum):
    LOCAL_LIST = "local list"
    CACHE = "cache"


@dataclass(frozen=True)
class Known:
    """What the station itself knows about an idTag, and from where."""

    info: IdTagInfo
    source: Source


@dataclass(frozen=True)
class AuthRules:
    """The configuration keys that decide (read at the moment of each decision)."""

    local_pre_authorize: bool
    local_authorize_offline: bool
    allow_offline_tx_for_unknown_id: bool


def pre_authorized(known: Known | None, rules: AuthRules, now: datetime) -> bool:
    """Online: may the tag start without waiting for Authorize.conf?"""
    return known is not None and rules.local_pre_authorize and known.info.valid_at(now)


def offline_verdict(known: Known | None, rules: AuthRules, now: datetime) -> AuthorizationStatus:
    """The answer when the CSMS cannot be asked."""
    if known is None:
        return AuthorizationStatus.ACCEPTED if rules.allow_offline_tx_for_unknown_id \
            else AuthorizationStatus.INVALID
    status = known.info.status_at(now)
    if status is not AuthorizationStatus.ACCEPTED:
        return status
    if rules.local_authorize_offline or rules.allow_offline_tx_for_unknown_id:
        return AuthorizationStatus.ACCEPTED
    return AuthorizationStatus.INVALID
