"""Authorization: local pre-authorization, the cache, the offline rules, refused idTags.

The rules and the cache are tested in-process; the protocol cases run `python -m
workers.ocpp16` against the test CSMS with configuration keys stored beforehand in its
database, as a ChangeConfiguration would have persisted them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ocpp.v16 import call

from bus import Bus, contract
from bus.enums import AuthorizationStatus, StartSource, StopReason
from bus.messages import (
    AuthorizeReply,
    AuthorizeRequest,
    CommandResult,
    SessionStarted,
    StartRequest,
    StopRequest,
)
from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.bus_servers import serving
from tests.support.waiting import async_wait_until
from webapp.station.models import AuthCacheEntry
from workers.ocpp16.auth.cache import AuthCache
from workers.ocpp16.auth.idtags import IdTagInfo, InvalidIdTagInfo, id_tag_key, same_id_tag
from workers.ocpp16.auth.rules import AuthRules, Known, Source, offline_verdict, pre_authorized
from workers.ocpp16.txqueue import db
from workers.sim.csms import Csms

ACCEPTED, BLOCKED, EXPIRED, INVALID = (AuthorizationStatus.ACCEPTED, AuthorizationStatus.BLOCKED,
                                       AuthorizationStatus.EXPIRED, AuthorizationStatus.INVALID)
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
PAST = "2020-01-01T00:00:00.000Z"


# ---- shared with test_local_list.py ------------------------------------------------------------

def store_keys(db_path: Path, **values: str) -> None:
    """Persist configuration keys as persisted.change_configuration does (table OcppSetting)."""
    with sqlite3.connect(db_path) as connection:
        connection.executemany("INSERT OR REPLACE INTO station_ocppsetting (key, value, changed_at) "
                               "VALUES (?, ?, datetime('now'))", list(values.items()))


def rows(db_path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db_path) as connection:
        return connection.execute(sql).fetchall()


def entry(id_tag: str, status: str | None = "Accepted", **info: str) -> dict:
    """A SendLocalList entry; status None = without idTagInfo (a Differential delete)."""
    return {"idTag": id_tag} if status is None else {"idTag": id_tag, "idTagInfo": {"status": status, **info}}


async def online(csms: Csms, start_ocpp16, service_db: Path, **keys: str):
    """ocpp16 with these configuration keys, booted and done with its first StatusNotifications."""
    store_keys(service_db, **keys)
    process = start_ocpp16(csms.url)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)
    return process


async def authorize(bus: Bus, id_tag: str) -> AuthorizeReply:
    return await bus.request(contract.AUTHORIZE, AuthorizeRequest(id_tag=id_tag))


async def statuses(bus: Bus, *id_tags: str) -> list[AuthorizationStatus]:
    return [(await authorize(bus, id_tag)).status for id_tag in id_tags]


async def wait_offline(bus: Bus) -> None:
    async def offline() -> bool:
        link = await bus.get(contract.OCPP_LINK)
        return link is not None and not link.connected
    await async_wait_until(offline, timeout_s=10, what="ocpp16 noticing the CSMS is gone")


async def wait_log(process, text: str) -> None:
    """For outcomes that leave nothing else to observe: wait until ocpp16 logs `text`."""
    async def logged() -> bool:
        return text in process.log()
    await async_wait_until(logged, timeout_s=10, what=f"ocpp16 logging {text!r}")


class FakeSmartw:
    """Answers START and STOP like smartw, recording every request."""

    def __init__(self) -> None:
        self.starts: list[StartRequest] = []
        self.stops: list[StopRequest] = []

    async def start(self, request: StartRequest) -> CommandResult:
        self.starts.append(request)
        return CommandResult(accepted=True)

    async def stop(self, request: StopRequest) -> CommandResult:
        self.stops.append(request)
        return CommandResult(accepted=True)


@asynccontextmanager
async def fake_smartw() -> AsyncIterator[FakeSmartw]:
    fake = FakeSmartw()
    async with serving("smartw", {contract.START: fake.start, contract.STOP: fake.stop}):
        yield fake


# ---- idTags and the rules (pure) ----------------------------------------------------------------

def test_id_tags_compare_without_regard_to_case() -> None:
    """errata 3.73/3.74: idTags are CiString20."""
    assert id_tag_key("04aBcD") == id_tag_key("04ABCD") == "04abcd"
    assert same_id_tag("Group-1", "GROUP-1") and not same_id_tag("GROUP-1", None)
    assert same_id_tag(None, None)
    assert len(id_tag_key("ß" * 20)) == 20  # folding would make it 40 characters


def test_id_tag_info_from_the_csms_expires_and_tolerates_a_bad_date() -> None:
    info = IdTagInfo.from_ocpp({"status": "Accepted", "expiry_date": PAST, "parent_id_tag": "G1"})
    assert info.parent_id_tag == "G1" and info.status_at(NOW) is EXPIRED and not info.valid_at(NOW)
    assert IdTagInfo.from_ocpp({"status": "Blocked", "expiry_date": "2099-01-01T00:00:00Z"}).status_at(NOW) \
        is BLOCKED
    with pytest.raises(InvalidIdTagInfo, match="expiryDate"):
        IdTagInfo.from_ocpp({"status": "Accepted", "expiry_date": "next week"})
    assert IdTagInfo.from_ocpp({"status": "Accepted", "expiry_date": "next week"}, strict=False) == \
        IdTagInfo(ACCEPTED)
    with pytest.raises(InvalidIdTagInfo, match="status"):
        IdTagInfo.from_ocpp({"status": "Maybe"})


def _known(status: AuthorizationStatus, expiry: datetime | None = None,
           source: Source = Source.LOCAL_LIST) -> Known:
    return Known(IdTagInfo(status, expiry), source)


@pytest.mark.parametrize(("known", "local_offline", "unknown_offline", "verdict"), [
    (None, True, False, INVALID),
    (None, False, True, ACCEPTED),  # AllowOfflineTxForUnknownId
    (_known(ACCEPTED), True, False, ACCEPTED),  # LocalAuthorizeOffline (TC_037_1)
    (_known(ACCEPTED, source=Source.CACHE), True, False, ACCEPTED),
    (_known(ACCEPTED), False, False, INVALID),
    (_known(ACCEPTED), False, True, ACCEPTED),
    (_known(BLOCKED), True, True, BLOCKED),  # listed but not Accepted: refused even for unknown ids
    (_known(ACCEPTED, NOW - timedelta(seconds=1)), True, True, EXPIRED),  # expired: refused too
    (_known(INVALID, source=Source.CACHE), True, True, INVALID),
])
def test_offline_verdicts(known: Known | None, local_offline: bool, unknown_offline: bool,
                          verdict: AuthorizationStatus) -> None:
    rules = AuthRules(local_pre_authorize=False, local_authorize_offline=local_offline,
                      allow_offline_tx_for_unknown_id=unknown_offline)
    assert offline_verdict(known, rules, NOW) is verdict


def test_only_a_locally_valid_id_is_pre_authorized() -> None:
    on = AuthRules(local_pre_authorize=True, local_authorize_offline=True,
                   allow_offline_tx_for_unknown_id=True)
    off = AuthRules(local_pre_authorize=False, local_authorize_offline=True,
                    allow_offline_tx_for_unknown_id=True)
    assert pre_authorized(_known(ACCEPTED), on, NOW)
    assert not pre_authorized(_known(ACCEPTED), off, NOW)
    assert not pre_authorized(_known(INVALID, source=Source.CACHE), on, NOW)  # asks the CSMS again
    assert not pre_authorized(_known(ACCEPTED, NOW), on, NOW)
    assert not pre_authorized(None, on, NOW)


# ---- the cache (in-process, real database) ------------------------------------------------------

@pytest.mark.django_db(transaction=True)
async def test_cache_evicts_entries_no_longer_valid_first_then_the_oldest() -> None:
    cache = AuthCache(max_entries=3)
    now = datetime.now(UTC)
    for id_tag, status in (("OLD", ACCEPTED), ("REFUSED", BLOCKED), ("MIDDLE", ACCEPTED), ("NEW", ACCEPTED)):
        await db(cache.store, id_tag, IdTagInfo(status), now)
    assert await db(cache.lookup, "refused") is None  # not valid: evicted first
    await db(cache.store, "old", IdTagInfo(ACCEPTED, parent_id_tag="G"), now)  # refreshed: now the newest
    await db(cache.store, "LATEST", IdTagInfo(ACCEPTED), now)
    assert await db(cache.lookup, "middle") is None  # the least recently updated
    assert await db(cache.lookup, "OLD") == IdTagInfo(ACCEPTED, parent_id_tag="G")
    assert await db(lambda: sorted(AuthCacheEntry.objects.values_list("id_tag", flat=True))) == [
        "LATEST", "NEW", "old"]
    await db(cache.store, "EXPIRING", IdTagInfo(ACCEPTED, now - timedelta(seconds=1)), now)
    assert await db(cache.lookup, "EXPIRING") is None  # expired counts as not valid
    assert await db(cache.clear) == 3


# ---- over OCPP ----------------------------------------------------------------------------------

async def test_locally_valid_ids_start_at_once_and_others_ask_the_csms(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """TC_007_1 (cached id), TC_008_1 (id in the local list), TC_023_4 (Authorize invalid),
    TC_061_1 (ClearCache); a cached id that is not valid is asked again; idTags ignore case.
    A listed id the CSMS answers otherwise is a LocalListConflict (OCPP 1.6 §3.5.2: connector
    0); the CSMS's answer counts, and list ids never enter the cache."""
    csms.behaviour.rejected_id_tags = {"BAD1"}
    await online(csms, start_ocpp16, service_db, LocalPreAuthorize="true")
    sent = await csms.send(CHARGE_POINT_ID, call.SendLocalList(
        list_version=1, update_type="Full",
        local_authorization_list=[entry("LIST1", parentIdTag="GROUP1"), entry("LIST2", "Blocked")]))
    assert sent.status == "Accepted"

    listed = await authorize(bus, "list1")
    assert (listed.status, listed.parent_id_tag) == (ACCEPTED, "GROUP1")
    assert await statuses(bus, "CARD1", "card1", "BAD1", "bad1") == [ACCEPTED, ACCEPTED, INVALID, INVALID]
    assert [c.payload["idTag"] for c in csms.calls("Authorize")] == ["CARD1", "BAD1", "bad1"]

    assert await statuses(bus, "LIST2") == [ACCEPTED]  # not valid locally: the CSMS is asked
    conflict = await async_wait_until(lambda: _conflicts(csms), what="StatusNotification LocalListConflict")
    assert [(c.payload["connectorId"], c.payload["info"]) for c in conflict] == [(0, "idTag LIST2")]
    assert rows(service_db, "SELECT status FROM station_localauthentry WHERE id_tag = 'LIST2'") == [
        ("Blocked",)]  # the list changes only through SendLocalList
    assert rows(service_db, "SELECT id_tag_key, status FROM station_authcacheentry ORDER BY id") == [
        ("card1", "Accepted"), ("bad1", "Invalid")]

    assert (await csms.send(CHARGE_POINT_ID, call.ClearCache())).status == "Accepted"
    assert await statuses(bus, "Card1") == [ACCEPTED]
    assert [c.payload["idTag"] for c in csms.calls("Authorize")][-1] == "Card1"  # asked again


async def test_without_a_cache_every_id_is_asked_and_clear_cache_is_rejected(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """TC_061_2 with errata 3.23: ClearCache is Rejected when there is no cache."""
    await online(csms, start_ocpp16, service_db, AuthorizationCacheEnabled="false", LocalPreAuthorize="true")
    assert await statuses(bus, "CARD1", "CARD1") == [ACCEPTED, ACCEPTED]
    assert len(csms.calls("Authorize")) == 2
    assert (await csms.send(CHARGE_POINT_ID, call.ClearCache())).status == "Rejected"
    assert rows(service_db, "SELECT * FROM station_authcacheentry") == []


async def test_remote_starts_are_authorized_first_when_configured(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """AuthorizeRemoteTxRequests=true: TC_008_2 (id in the list) and TC_007_2 (cached id) start
    without Authorize; another id is authorized after the answer (TC_023_5: refused, no start)."""
    csms.behaviour.rejected_id_tags = {"BAD1"}
    async with fake_smartw() as smartw:
        process = await online(csms, start_ocpp16, service_db, AuthorizeRemoteTxRequests="true",
                               LocalPreAuthorize="true")
        await csms.send(CHARGE_POINT_ID, call.SendLocalList(list_version=1, update_type="Full",
                                                            local_authorization_list=[entry("LIST1")]))
        assert await csms.remote_start(CHARGE_POINT_ID, "list1", connector_id=1) == "Accepted"
        assert smartw.starts == [StartRequest(connector_id=1, id_tag="list1", source=StartSource.REMOTE,
                                              authorized=True)]

        assert await csms.remote_start(CHARGE_POINT_ID, "NEW1", connector_id=2) == "Accepted"
        await csms.wait_for_call("Authorize")
        await async_wait_until(lambda: _started(smartw, "NEW1"), what="NEW1 started after its Authorize")
        assert await csms.remote_start(CHARGE_POINT_ID, "new1", connector_id=2) == "Accepted"  # now cached
        assert [s.id_tag for s in smartw.starts] == ["list1", "NEW1", "new1"]

        assert await csms.remote_start(CHARGE_POINT_ID, "BAD1", connector_id=1) == "Accepted"
        await wait_log(process, "remote start for BAD1 on connector 1: idTag Invalid, nothing started")
        assert [c.payload["idTag"] for c in csms.calls("Authorize")] == ["NEW1", "BAD1"]
        assert [s.id_tag for s in smartw.starts] == ["list1", "NEW1", "new1"]


async def _conflicts(csms: Csms) -> list:
    return [c for c in csms.calls("StatusNotification") if c.payload["errorCode"] == "LocalListConflict"]


async def _started(smartw: FakeSmartw, id_tag: str) -> bool:
    return any(start.id_tag == id_tag for start in smartw.starts)


async def test_offline_rules_and_what_survives_a_restart(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """TC_037_1 (offline start, valid id): LocalAuthorizeOffline with the list and the cache;
    AllowOfflineTxForUnknownId still refuses listed non-Accepted and expired ids; the list, its
    version and the cache survive a restart of ocpp16."""
    csms.behaviour.rejected_id_tags = {"BAD1"}
    process = await online(csms, start_ocpp16, service_db, AllowOfflineTxForUnknownId="true")
    await csms.send(CHARGE_POINT_ID, call.SendLocalList(
        list_version=3, update_type="Full",
        local_authorization_list=[entry("LIST1"), entry("BLOCK1", "Blocked"),
                                  entry("OLD1", expiryDate=PAST)]))
    assert await statuses(bus, "CARD1", "BAD1") == [ACCEPTED, INVALID]  # now cached

    await csms.stop()
    await wait_offline(bus)
    assert await statuses(bus, "list1", "BLOCK1", "OLD1", "card1", "BAD1", "STRANGER") == [
        ACCEPTED, BLOCKED, EXPIRED, ACCEPTED, INVALID, ACCEPTED]

    assert await process.stopped() == 0
    store_keys(service_db, AllowOfflineTxForUnknownId="false")
    start_ocpp16(csms.url)
    assert await statuses(bus, "LIST1", "Card1", "STRANGER") == [ACCEPTED, ACCEPTED, INVALID]
    await csms.start()
    await csms.wait_for_call("BootNotification", count=2, timeout_s=20)
    await csms.wait_for_call("StatusNotification", count=6, timeout_s=20)
    assert (await csms.send(CHARGE_POINT_ID, call.GetLocalListVersion())).list_version == 3


async def test_a_refused_start_is_stopped_with_stop_transaction_on_invalid_id(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """TC_037_3: started offline with an unknown id (AllowOfflineTxForUnknownId); the
    StartTransaction.conf refuses it; StopTransactionOnInvalidId=true -> stop, DeAuthorized."""
    csms.behaviour.rejected_id_tags = {"BAD1"}
    async with fake_smartw() as smartw:
        await online(csms, start_ocpp16, service_db, AllowOfflineTxForUnknownId="true",
                     StopTransactionOnInvalidId="true")
        await csms.stop()
        await wait_offline(bus)
        assert await statuses(bus, "BAD1") == [ACCEPTED]
        await bus.publish(contract.SESSIONS, SessionStarted(session_id="s-1", connector_id=2, id_tag="BAD1",
                                                            meter_start_wh=100))
        await async_wait_until(lambda: _running(bus, 2), what="the offline session recorded")
        await csms.start()

        await csms.wait_for_call("StartTransaction", timeout_s=20)
        await async_wait_until(lambda: _stopped(smartw), what="the STOP asked of smartw")
        assert smartw.stops == [StopRequest(connector_id=2, reason=StopReason.DE_AUTHORIZED)]
        assert rows(service_db, "SELECT status FROM station_authcacheentry WHERE id_tag_key = 'bad1'") == [
            ("Invalid",)]  # the StartTransaction.conf updated the cache


async def test_a_refused_start_goes_on_without_stop_transaction_on_invalid_id(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """TC_037_2: StopTransactionOnInvalidId=false -> the transaction goes on."""
    csms.behaviour.rejected_id_tags = {"BAD2"}
    async with fake_smartw() as smartw:
        process = await online(csms, start_ocpp16, service_db, StopTransactionOnInvalidId="false")
        await bus.publish(contract.SESSIONS, SessionStarted(session_id="s-2", connector_id=1, id_tag="BAD2",
                                                            meter_start_wh=100))
        await csms.wait_for_call("StartTransaction")
        await wait_log(process, "StopTransactionOnInvalidId is false, so it goes on")
        assert smartw.stops == []


async def _running(bus: Bus, connector_id: int) -> bool:
    return await bus.get(contract.OCPP_TRANSACTION, connector_id=connector_id) is not None


async def _stopped(smartw: FakeSmartw) -> bool:
    return bool(smartw.stops)
