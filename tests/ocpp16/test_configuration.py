"""GetConfiguration / ChangeConfiguration against the running ocpp16 (OCTT module 08 and 16): what
the CSMS reads and changes, what is kept over a restart, what takes effect at once, and the
vendor keys that smartw holds."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from bus import Bus, contract
from bus.messages import CommandResult, FreeModeRequest, SessionStarted
from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.bus_servers import serving
from tests.support.database import query
from tests.support.waiting import async_wait_until
from workers.ocpp16 import config_keys as keys
from workers.ocpp16.config_keys import Access
from workers.sim.csms import Csms


async def _online(csms: Csms, start_ocpp16, **env: str):
    ocpp16 = start_ocpp16(csms.url, **env)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)
    return ocpp16


async def _get(csms: Csms, *names: str) -> tuple[dict[str, dict], list[str]]:
    result = await csms.send(CHARGE_POINT_ID, call.GetConfiguration(key=list(names) or None))
    return {entry["key"]: entry for entry in result.configuration_key or []}, result.unknown_key or []


async def _change(csms: Csms, key: str, value: str) -> str:
    return str((await csms.send(CHARGE_POINT_ID, call.ChangeConfiguration(key=key, value=value))).status)


NINE_MEASURANDS = ",".join(["SoC", "Voltage", "Voltage.L1", "Voltage.L2", "Voltage.L3", "Current.Import",
                            "Current.Offered", "Power.Offered", "Power.Active.Import"])  # MaxLength is 8


async def _raw_replies(csms: Csms) -> list:
    return csms.raw_replies


def _stored(db: Path) -> dict[str, str]:
    return {row["key"]: row["value"] for row in query(db, "SELECT key, value FROM station_ocppsetting")}


async def test_get_configuration_reports_every_readable_key_or_the_ones_asked(
        csms: Csms, start_ocpp16) -> None:
    """OCTT TC_019_CS: no key list gives every key with its readonly flag; named keys are
    answered once each, unknown and write-only names come back in unknownKey."""
    await _online(csms, start_ocpp16)

    every, unknown = await _get(csms)
    readable = {key.name for key in keys.ALL_KEYS if key.access is not Access.WRITE}
    assert set(every) == readable and unknown == []
    assert every["NumberOfConnectors"] == {"key": "NumberOfConnectors", "readonly": True, "value": "2"}
    assert every["HeartbeatInterval"] == {"key": "HeartbeatInterval", "readonly": False, "value": "60"}
    assert every["MeterValueSampleInterval"]["value"] == "1"  # the test environment's default
    assert every["StationFreeMode"] == {"key": "StationFreeMode", "readonly": False, "value": "false"}
    assert every["SupportedFeatureProfiles"]["readonly"] is True

    named, unknown = await _get(csms, "heartbeatINTERVAL", "HeartbeatInterval", "NoSuchKey",
                                "AuthorizationKey")
    assert list(named) == ["HeartbeatInterval"] and unknown == ["NoSuchKey", "AuthorizationKey"]

    too_many = [f"Key{index}" for index in range(int(keys.GET_CONFIGURATION_MAX_KEYS.default) + 1)]
    with pytest.raises(OCPPError) as refused:
        await csms.send(CHARGE_POINT_ID, call.GetConfiguration(key=too_many))
    assert refused.value.code == "OccurenceConstraintViolation"


async def test_change_configuration_keeps_valid_values_and_refuses_the_rest(
        csms: Csms, start_ocpp16, service_db: Path) -> None:
    """OCTT TC_021_CS (Accepted, read back), TC_040_1_CS (NotSupported), TC_040_2_CS (Rejected):
    a refused value (wrong type, out of bounds, unsupported measurand, too many or empty list
    items, read-only key, too long) changes nothing, stores nothing and leaves a log line."""
    ocpp16 = await _online(csms, start_ocpp16)

    measurands = "Energy.Active.Import.Register,Voltage.L1"
    assert await _change(csms, "MeterValuesSampledData", measurands) == "Accepted"
    assert await _change(csms, "localpreauthorize", "TRUE") == "Accepted"  # key names are case-insensitive
    assert await _change(csms, "NoSuchKey", "1") == "NotSupported"
    refused = [("HeartbeatInterval", "-5"), ("HeartbeatInterval", "ten"), ("ConnectionTimeOut", "0"),
               ("MeterValuesSampledData", "Temperature"), ("MeterValuesSampledData", "SoC,,Voltage"),
               ("MeterValuesSampledData", NINE_MEASURANDS),
               ("NumberOfConnectors", "3"), ("LocalAuthorizeOffline", "maybe"),
               ("ConnectorPhaseRotation", "garbage"), ("CpoName", "tab\there")]
    for key, value in refused:
        assert (key, await _change(csms, key, value)) == (key, "Rejected")
    # Over 500 characters breaks the schema (the CSMS library would not even send it): CALLERROR.
    frame = [2, "too-long-1", "ChangeConfiguration", {"key": "CpoName", "value": "x" * 501}]
    await csms.send_raw(CHARGE_POINT_ID, json.dumps(frame))
    await async_wait_until(lambda: _raw_replies(csms), what="an answer to the raw CALL")
    assert csms.raw_replies[0][:2] == [4, "too-long-1"]

    values, _ = await _get(csms, "MeterValuesSampledData", "LocalPreAuthorize", "HeartbeatInterval",
                           "ConnectionTimeOut", "NumberOfConnectors", "LocalAuthorizeOffline")
    assert {key: entry["value"] for key, entry in values.items()} == {
        "MeterValuesSampledData": measurands, "LocalPreAuthorize": "true", "HeartbeatInterval": "60",
        "ConnectionTimeOut": "120", "NumberOfConnectors": "2",
        "LocalAuthorizeOffline": "true"}
    stored = _stored(service_db)
    assert stored["MeterValuesSampledData"] == measurands
    assert stored["LocalPreAuthorize"] == "true"
    assert not {"ConnectionTimeOut", "NumberOfConnectors", "LocalAuthorizeOffline", "NoSuchKey",
                "CpoName"} & set(stored)
    log = ocpp16.log()
    assert "ChangeConfiguration HeartbeatInterval rejected: must be at least 1" in log
    assert "ChangeConfiguration NumberOfConnectors: read-only" in log
    assert "MeterValuesSampledData rejected: must name supported measurands; 'Temperature'" in log


async def test_a_change_survives_a_restart_and_wins_over_the_environment_default(
        csms: Csms, start_ocpp16) -> None:
    """Persisted in OcppSetting: a restarted ocpp16 reports and uses the changed values, even
    where an OCPP_* variable gives another default (here TransactionMessageRetryInterval 0.2)."""
    first = await _online(csms, start_ocpp16)
    assert await _change(csms, "TransactionMessageRetryInterval", "7") == "Accepted"
    assert await _change(csms, "StopTransactionOnInvalidId", "false") == "Accepted"
    assert await first.stopped() == 0

    start_ocpp16(csms.url)
    await csms.wait_for_call("StatusNotification", count=6, timeout_s=20)  # 3 more: the second start
    values, _ = await _get(csms, "TransactionMessageRetryInterval", "StopTransactionOnInvalidId")
    assert values["TransactionMessageRetryInterval"]["value"] == "7"
    assert values["StopTransactionOnInvalidId"]["value"] == "false"


async def test_a_new_heartbeat_interval_takes_effect_at_once(csms: Csms, start_ocpp16) -> None:
    """The Boot interval (60 s) is running when the CSMS lowers HeartbeatInterval to 1 s: the
    next Heartbeat comes about 1 s later, not after what is left of the 60 s."""
    await _online(csms, start_ocpp16)
    assert await _change(csms, "HeartbeatInterval", "1") == "Accepted"
    changed_at = time.monotonic()
    await csms.wait_for_call("Heartbeat", timeout_s=5)
    assert time.monotonic() - changed_at < 2.5


async def test_transaction_message_attempts_and_retry_interval_apply_without_a_restart(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    """Started with 3 attempts, the CSMS raises TransactionMessageAttempts to 5: a
    StartTransaction refused 4 times is still delivered on the 5th attempt."""
    await _online(csms, start_ocpp16)
    assert await _change(csms, "TransactionMessageAttempts", "5") == "Accepted"
    assert await _change(csms, "TransactionMessageRetryInterval", "0.1") == "Accepted"
    csms.behaviour.failures["StartTransaction"] = 4
    await bus.publish(contract.SESSIONS, SessionStarted(session_id="s-live", connector_id=1, id_tag="LIVE",
                                                        meter_start_wh=10))
    fifth = await csms.wait_for_call("StartTransaction", count=5, timeout_s=10)
    assert fifth.error_code is None and fifth.response["transactionId"] > 0
    assert [c.error_code for c in csms.calls("StartTransaction")][:4] == ["InternalError"] * 4


class FakeSmartw:
    """Answers FREE_MODE like smartw: keeps the change in the RuntimeSettings row of the
    database ocpp16 reads (smartw is that row's only writer), or refuses, or fails."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.requests: list[FreeModeRequest] = []
        self.answer = "keep"  # "keep", "refuse" or "fail"

    def write_row(self, free_mode: bool, id_tag: str) -> None:
        with sqlite3.connect(self.db) as connection:
            connection.execute(
                "INSERT OR REPLACE INTO station_runtimesettings (id, station_operative, "
                "inoperative_connectors, free_mode, free_mode_id_tag) VALUES (1, 1, '[]', ?, ?)",
                (free_mode, id_tag))

    def row(self) -> tuple[bool, str]:
        rows = query(self.db, "SELECT free_mode, free_mode_id_tag FROM station_runtimesettings")
        return (bool(rows[0][0]), rows[0][1]) if rows else (False, "FREEMODE")

    async def free_mode(self, request: FreeModeRequest) -> CommandResult:
        self.requests.append(request)
        if self.answer == "fail":
            raise RuntimeError("database is locked")
        if self.answer == "refuse":
            return CommandResult(accepted=False, reason="settings_not_saved")
        self.write_row(request.enabled, request.id_tag or self.row()[1])
        return CommandResult(accepted=True)


async def _free_mode_values(csms: Csms) -> tuple[str, str]:
    values, _ = await _get(csms, "StationFreeMode", "StationFreeModeIdTag")
    return values["StationFreeMode"]["value"], values["StationFreeModeIdTag"]["value"]


@pytest.fixture
async def smartw(redis_client, service_db: Path) -> AsyncIterator[FakeSmartw]:
    fake = FakeSmartw(service_db)
    async with serving("smartw", {contract.FREE_MODE: fake.free_mode}):
        yield fake


async def test_free_mode_keys_are_changed_by_smartw_and_read_from_its_settings(
        csms: Csms, start_ocpp16, smartw: FakeSmartw, service_db: Path) -> None:
    """Vendor keys StationFreeMode / StationFreeModeIdTag: a change is Accepted only once smartw
    kept it; GetConfiguration reports smartw's row as it is now (also after an operator's change
    outside OCPP), and ocpp16 stores no copy."""
    await _online(csms, start_ocpp16)

    assert await _change(csms, "StationFreeMode", "true") == "Accepted"
    assert smartw.requests == [FreeModeRequest(enabled=True)]
    assert await _change(csms, "StationFreeModeIdTag", "CAFE01") == "Accepted"
    assert smartw.requests[-1] == FreeModeRequest(enabled=True, id_tag="CAFE01")
    assert await _free_mode_values(csms) == ("true", "CAFE01")

    smartw.write_row(False, "OPERATOR")  # `manage.py station free-mode off --id-tag OPERATOR`
    assert await _free_mode_values(csms) == ("false", "OPERATOR")

    asked = len(smartw.requests)
    assert await _change(csms, "StationFreeModeIdTag", "") == "Rejected"
    assert await _change(csms, "StationFreeModeIdTag", "X" * 21) == "Rejected"
    assert await _change(csms, "StationFreeMode", "on") == "Rejected"
    assert len(smartw.requests) == asked  # refused by the key's rules: smartw was not asked
    smartw.answer = "refuse"
    assert await _change(csms, "StationFreeMode", "true") == "Rejected"
    smartw.answer = "fail"
    assert await _change(csms, "StationFreeModeIdTag", "OTHER") == "Rejected"
    assert len(smartw.requests) == asked + 2 and smartw.row() == (False, "OPERATOR")
    assert not {"StationFreeMode", "StationFreeModeIdTag"} & set(_stored(service_db))
