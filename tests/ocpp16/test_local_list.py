"""The local authorization list: SendLocalList / GetLocalListVersion (OCPP 1.6 §5.10, §5.15).

The update rules are tested in-process on the real database; the protocol cases drive
`python -m workers.ocpp16` from the test CSMS.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import UpdateStatus, UpdateType

from bus.enums import AuthorizationStatus
from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.ocpp16.test_authorization import entry, online, rows
from webapp.station.models import LocalAuthEntry
from workers.ocpp16.auth.idtags import IdTagInfo
from workers.ocpp16.auth.local_list import ListLimits, LocalList
from workers.ocpp16.txqueue import db
from workers.sim.csms import Csms

FULL, DIFFERENTIAL = UpdateType.full, UpdateType.differential
LIMITS = ListLimits(per_message=3, total=4)


def wire(id_tag: str, status: str | None = "Accepted", **info: str) -> dict:
    """An entry as the handler receives it (the library's snake_case)."""
    if status is None:
        return {"id_tag": id_tag}
    return {"id_tag": id_tag, "id_tag_info": {"status": status, **info}}


async def update(local_list: LocalList, version: int, kind: UpdateType, *entries: dict,
                 limits: ListLimits = LIMITS) -> UpdateStatus:
    return (await db(local_list.update, version, kind, list(entries), limits)).status


async def listed() -> dict[str, str]:
    return await db(lambda: dict(LocalAuthEntry.objects.values_list("id_tag", "status")))


@pytest.mark.django_db(transaction=True)
async def test_full_and_differential_updates_and_the_version() -> None:
    local_list = LocalList()
    assert await db(local_list.version) == 0
    assert await update(local_list, 5, FULL, wire("A1"), wire("b2", "Blocked", parent_id_tag="G")) == \
        "Accepted"
    assert await db(local_list.version) == 5
    assert await db(local_list.lookup, "B2") == IdTagInfo(AuthorizationStatus.BLOCKED, parent_id_tag="G")

    # Differential: an entry with idTagInfo adds or replaces, one without deletes (case-insensitively)
    changes = (wire("B2", "Accepted"), wire("a1", None), wire("C3"))
    assert await update(local_list, 6, DIFFERENTIAL, *changes) == "Accepted"
    assert await listed() == {"B2": "Accepted", "C3": "Accepted"}
    assert await update(local_list, 6, DIFFERENTIAL, wire("D4")) == "VersionMismatch"  # TC_043_2
    assert await update(local_list, 2, DIFFERENTIAL, wire("D4")) == "VersionMismatch"
    assert await update(local_list, 2, FULL, wire("D4", expiry_date="2030-01-01T00:00:00Z")) == "Accepted"
    assert await db(local_list.lookup, "d4") == IdTagInfo(AuthorizationStatus.ACCEPTED,
                                                           datetime(2030, 1, 1, tzinfo=UTC))
    assert await update(local_list, 3, FULL) == "Accepted"  # an empty Full list empties it
    assert await db(local_list.version) == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("version", "kind", "entries", "why"), [
    (0, FULL, [wire("A1")], "listVersion 0 is below 1"),
    (9, FULL, [wire(f"T{n}") for n in range(4)], "4 entries, SendLocalListMaxLength is 3"),  # TC_043_3
    (9, DIFFERENTIAL, [wire("N1"), wire("N2"), wire("N3")], "would exceed LocalAuthListMaxLength (4)"),
    (9, FULL, [wire("A1", None)], "a Full update needs its idTagInfo"),
    (9, FULL, [wire("A1"), wire("a1", "Blocked")], "appears twice"),
    (9, FULL, [wire(" ")], "empty idTag"),
    (9, DIFFERENTIAL, [wire("N1", expiry_date="soon")], "expiryDate 'soon'"),
])
async def test_an_update_that_cannot_apply_fails_and_changes_nothing(
        version: int, kind: UpdateType, entries: list[dict], why: str) -> None:
    local_list = LocalList()
    assert await update(local_list, 1, FULL, wire("A1"), wire("B2")) == "Accepted"
    outcome = await db(local_list.update, version, kind, entries, LIMITS)
    assert outcome.status == "Failed" and why in outcome.reason
    assert await listed() == {"A1": "Accepted", "B2": "Accepted"}
    assert await db(local_list.version) == 1


async def test_local_list_over_ocpp(csms: Csms, start_ocpp16, service_db: Path) -> None:
    """TC_042_2 (version of an empty list), TC_043 (SendLocalList), TC_043_2 (VersionMismatch),
    TC_043_3 (Failed: more entries than SendLocalListMaxLength)."""
    await online(csms, start_ocpp16, service_db, SendLocalListMaxLength="2")

    async def send(version: int, kind: str, *entries: dict) -> str:
        return (await csms.send(CHARGE_POINT_ID, call.SendLocalList(
            list_version=version, update_type=kind, local_authorization_list=list(entries)))).status

    async def version() -> int:
        return (await csms.send(CHARGE_POINT_ID, call.GetLocalListVersion())).list_version

    assert await version() == 0
    assert await send(1, "Full", entry("TAG1"), entry("TAG2", "Blocked")) == "Accepted"
    assert await send(1, "Differential", entry("TAG3")) == "VersionMismatch"
    assert await send(2, "Differential", entry("tag2", None), entry("TAG3", parentIdTag="G1")) == "Accepted"
    assert await send(3, "Full", entry("A"), entry("B"), entry("C")) == "Failed"
    assert await version() == 2
    stored = rows(service_db, "SELECT id_tag, status, parent_id_tag FROM station_localauthentry "
                              "ORDER BY id_tag")
    assert stored == [("TAG1", "Accepted", ""), ("TAG3", "Accepted", "G1")]


async def test_a_disabled_list_takes_no_update(csms: Csms, start_ocpp16, service_db: Path) -> None:
    """LocalAuthListEnabled=false: SendLocalList is NotSupported and the stored list stays."""
    await online(csms, start_ocpp16, service_db, LocalAuthListEnabled="false")
    sent = await csms.send(CHARGE_POINT_ID, call.SendLocalList(
        list_version=1, update_type="Full", local_authorization_list=[entry("TAG1")]))
    assert sent.status == "NotSupported"
    assert (await csms.send(CHARGE_POINT_ID, call.GetLocalListVersion())).list_version == 0
    assert rows(service_db, "SELECT * FROM station_localauthentry") == []
