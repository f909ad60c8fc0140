"""The feature object `ctx.auth`: every decision about an idTag, and what the CSMS teaches.

- `authorize` serves the bus command contract.AUTHORIZE (smartw asks before a start, and
  before a stop with another card): locally valid with LocalPreAuthorize -> Accepted at once;
  otherwise Authorize.req while connected and Accepted; offline, or when the CSMS gives no
  answer (timeout, CALLERROR), the offline rules of rules.py.
- `csms_answered` takes every IdTagInfo the CSMS sends (Authorize.conf here, StartTransaction
  and StopTransaction conf from sender.py): it updates the cache (AuthorizationCacheEnabled)
  unless the tag is in the local list, and reports a LocalListConflict (StatusNotification on
  connector 0, OCPP 1.6 §3.5.2) when the CSMS disagrees with the list. A refused
  StartTransaction goes on to invalid_id.py.
- The local-auth handlers use `clear_cache`, `local_list_version` and `send_local_list`; the
  remote handlers `remote_start_needs_csms` and `remote_starts`.

LocalAuthListEnabled=false: the list is kept but not consulted, and SendLocalList answers
NotSupported (nothing changes; the CSMS learns its list is not in use rather than being told
Accepted for a list the station ignores). AuthorizationCacheEnabled=false: the cache is
neither consulted nor updated, and ClearCache answers Rejected (errata 3.23).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ocpp.v16 import call
from ocpp.v16.enums import ChargePointErrorCode, UpdateStatus, UpdateType

from bus import Bus, contract
from bus.enums import AuthorizationStatus
from bus.messages import AuthorizeReply, AuthorizeRequest
from webapp.station.models import Transaction
from workers.ocpp16 import config_keys as keys
from workers.ocpp16.auth.cache import AuthCache
from workers.ocpp16.auth.idtags import IdTagInfo, InvalidIdTagInfo
from workers.ocpp16.auth.invalid_id import InvalidIdPolicy
from workers.ocpp16.auth.local_list import ListLimits, LocalList
from workers.ocpp16.auth.remote_start import DeferredRemoteStarts
from workers.ocpp16.auth.rules import AuthRules, Known, Source, offline_verdict, pre_authorized
from workers.ocpp16.config_keys import ConfigurationStore
from workers.ocpp16.payloads import ocpp_time
from workers.ocpp16.protocol import CsmsCallError, CsmsConnection
from workers.ocpp16.status import UNKNOWN, from_station
from workers.ocpp16.txqueue import db

if TYPE_CHECKING:
    from workers.ocpp16.notices import Notices
    from workers.ocpp16.remote import BusRemoteControl

log = logging.getLogger(__name__)

AUTHORIZE_MARGIN_S = 1.0  # answer the bus before the caller's AUTHORIZE timeout


def _now() -> datetime:
    return datetime.now(UTC)


def _reply(status: AuthorizationStatus, info: IdTagInfo | None) -> AuthorizeReply:
    return AuthorizeReply(status=status, parent_id_tag=info.parent_id_tag if info else None)


class Authorizer:
    def __init__(self, bus: Bus, config: ConfigurationStore, notices: Notices, remote: BusRemoteControl,
                 cache: AuthCache | None = None) -> None:
        self._bus = bus
        self._config = config
        self._notices = notices
        self.cache = cache or AuthCache()
        self.local_list = LocalList()
        self._invalid_id = InvalidIdPolicy(bus, config)
        self.remote_starts = DeferredRemoteStarts(self._status_of, remote.start_on, self._spawn)
        self._connection: CsmsConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def connected(self, connection: CsmsConnection) -> None:
        """Authorize.req goes over this connection while it is up and Accepted."""
        self._connection = connection
        try:
            await asyncio.Event().wait()  # ends when the connection's work is cancelled
        finally:
            if self._connection is connection:
                self._connection = None

    # ---- deciding ---------------------------------------------------------------------

    async def authorize(self, request: AuthorizeRequest) -> AuthorizeReply:
        id_tag, now = request.id_tag, _now()
        known = await self.known(id_tag)
        connection = self._connection
        if connection is not None:
            if known is not None and pre_authorized(known, self._rules(), now):
                log.info("Authorize %s: Accepted from the %s (LocalPreAuthorize)", id_tag, known.source)
                return _reply(AuthorizationStatus.ACCEPTED, known.info)
            answer = await self._ask_csms(connection, id_tag)
            if answer is not None:
                return _reply(answer.status, answer)
        status = offline_verdict(known, self._rules(), now)
        log.info("Authorize %s offline: %s (%s)", id_tag, status, known.source if known else "unknown idTag")
        return _reply(status, known.info if known else None)

    async def remote_start_needs_csms(self, id_tag: str) -> bool:
        """AuthorizeRemoteTxRequests: a remote start is authorized like a local one, so it
        needs Authorize.req unless the tag is pre-authorized locally (OCTT TC_007_2, TC_008_2)."""
        if not self._config.get(keys.AUTHORIZE_REMOTE_TX_REQUESTS):
            return False
        return not pre_authorized(await self.known(id_tag), self._rules(), _now())

    async def known(self, id_tag: str) -> Known | None:
        """The local list's entry (if the list is in use), else the cache's (if enabled)."""
        if self._config.get(keys.LOCAL_AUTH_LIST_ENABLED):
            listed = await db(self.local_list.lookup, id_tag)
            if listed is not None:
                return Known(listed, Source.LOCAL_LIST)
        if self._config.get(keys.AUTHORIZATION_CACHE_ENABLED):
            cached = await db(self.cache.lookup, id_tag)
            if cached is not None:
                return Known(cached, Source.CACHE)
        return None

    def _rules(self) -> AuthRules:
        return AuthRules(local_pre_authorize=self._config.get(keys.LOCAL_PRE_AUTHORIZE),
                         local_authorize_offline=self._config.get(keys.LOCAL_AUTHORIZE_OFFLINE),
                         allow_offline_tx_for_unknown_id=self._config.get(keys.ALLOW_OFFLINE_TX_FOR_UNKNOWN_ID))

    async def _status_of(self, id_tag: str) -> AuthorizationStatus:
        return (await self.authorize(AuthorizeRequest(id_tag=id_tag))).status

    async def _ask_csms(self, connection: CsmsConnection, id_tag: str) -> IdTagInfo | None:
        timeout_s = min(self._config.get(keys.MESSAGE_TIMEOUT),
                        contract.AUTHORIZE.timeout_s - AUTHORIZE_MARGIN_S)
        try:
            result = await connection.call(call.Authorize(id_tag=id_tag), timeout_s=timeout_s)
            info = IdTagInfo.from_ocpp(result.id_tag_info, strict=False)
        except (CsmsCallError, InvalidIdTagInfo) as error:
            log.warning("Authorize %s got no usable answer (%s): offline rules apply", id_tag, error)
            return None
        log.info("Authorize %s: %s", id_tag, info.status)
        await self.csms_answered(id_tag, info)
        return info

    # ---- learning from the CSMS ---------------------------------------------------------

    async def csms_answered(self, id_tag: str, info: IdTagInfo) -> None:
        listed = await db(self.local_list.lookup, id_tag)
        if listed is not None:  # list tags never enter the cache
            if self._config.get(keys.LOCAL_AUTH_LIST_ENABLED) and not listed.agrees_with(info, _now()):
                await self._report_conflict(id_tag, listed, info)
            return
        if self._config.get(keys.AUTHORIZATION_CACHE_ENABLED):
            await db(self.cache.store, id_tag, info, _now())

    async def transaction_answered(self, id_tag: str, id_tag_info: Mapping[str, Any] | None,
                                   started: Transaction | None) -> None:
        """A StartTransaction.conf (`started` = its transaction) or StopTransaction.conf."""
        if not id_tag_info:
            return
        try:
            info = IdTagInfo.from_ocpp(id_tag_info, strict=False)
        except InvalidIdTagInfo as error:
            log.warning("idTagInfo for %s ignored: %s", id_tag, error)
            return
        await self.csms_answered(id_tag, info)
        if started is not None and info.status is not AuthorizationStatus.ACCEPTED:
            self._spawn(self._invalid_id.start_refused(started, info.status))

    async def _report_conflict(self, id_tag: str, listed: IdTagInfo, answer: IdTagInfo) -> None:
        log.warning("LocalListConflict for %s: the local list says %s (parent %s), the CSMS %s (parent %s)",
                    id_tag, listed.status, listed.parent_id_tag, answer.status, answer.parent_id_tag)
        station = await self._bus.get(contract.STATION)
        status = (from_station(station) if station is not None else UNKNOWN).status
        self._notices.send_soon(call.StatusNotification(
            connector_id=0, error_code=ChargePointErrorCode.local_list_conflict, status=status,
            timestamp=ocpp_time(_now()), info=f"idTag {id_tag}"))

    # ---- ClearCache, GetLocalListVersion, SendLocalList ---------------------------------------

    async def clear_cache(self) -> bool:
        if not self._config.get(keys.AUTHORIZATION_CACHE_ENABLED):
            log.info("ClearCache: the cache is disabled, Rejected")
            return False
        log.info("ClearCache: %d entries removed", await db(self.cache.clear))
        return True

    async def local_list_version(self) -> int:
        return await db(self.local_list.version)

    async def send_local_list(self, list_version: int, update_type: str,
                              entries: Sequence[Mapping[str, Any]]) -> UpdateStatus:
        if not self._config.get(keys.LOCAL_AUTH_LIST_ENABLED):
            log.info("SendLocalList v%s while LocalAuthListEnabled is false: NotSupported", list_version)
            return UpdateStatus.not_supported
        limits = ListLimits(per_message=self._config.get(keys.SEND_LOCAL_LIST_MAX_LENGTH),
                            total=self._config.get(keys.LOCAL_AUTH_LIST_MAX_LENGTH))
        outcome = await db(self.local_list.update, list_version, UpdateType(update_type), entries, limits)
        if outcome.status is not UpdateStatus.accepted:
            log.warning("SendLocalList %s v%s: %s (%s)", update_type, list_version, outcome.status,
                        outcome.reason)
            return outcome.status
        await db(self.cache.forget, outcome.listed_keys)
        log.info("SendLocalList %s v%s: Accepted (%d entries given)", update_type, list_version, len(entries))
        return outcome.status

    # ---- background work ----------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run work that must not hold up its caller (the transaction queue, an @after hook)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("authorization background work failed", exc_info=task.exception())
