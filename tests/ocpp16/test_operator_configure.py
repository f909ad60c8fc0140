"""The configurator changes the CSMS link over the bus (contract.OCPP_CONFIGURE): a new CSMS URL
or charge point id reconnects at once and boots again, both persist across a restart and stay
invisible to the CSMS; SecurityProfile and AuthorizationKey follow ChangeConfiguration's rules.
ocpp16 runs as a subprocess against the test CSMS (tests/ocpp16/conftest.py)."""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import time
from pathlib import Path

import pytest
import redis
from ocpp.v16 import call

from bus import Bus, contract
from bus.messages import OcppLink
from bus.messages.operator import OcppConfigureReply, OcppConfigureRequest
from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.database import query
from tests.support.tls import CertificateAuthority, seed_configuration, seed_root
from tests.support.waiting import async_wait_until
from workers.ocpp16.config_keys import InvalidValue
from workers.ocpp16.operator_config import ADDRESS_STATE, parse_charge_point_id, parse_csms_url
from workers.sim.csms import Csms

REPLY_WITHIN_S = 2.0  # "well under" the command's 5 s timeout
KEY_TEXT = "operator-key-1234"  # 17 characters: taken as its UTF-8 text (16..20 bytes)


async def configure(bus: Bus, key: str, value: str) -> OcppConfigureReply:
    started = time.monotonic()
    reply = await bus.request(contract.OCPP_CONFIGURE, OcppConfigureRequest(key=key, value=value))  # type: ignore[arg-type]
    assert time.monotonic() - started < REPLY_WITHIN_S, f"{key}: the reply took too long"
    return reply


async def wait_until_served(redis_client: redis.Redis, bus: Bus) -> None:
    """ocpp16 reads the command stream from its consumer group (made at start, reading new entries
    only): a command sent before it exists would be lost."""
    stream = bus.names.command(contract.OCPP_CONFIGURE.name)

    async def served() -> bool:
        try:
            return any(group["name"] == "ocpp16" for group in redis_client.xinfo_groups(stream))
        except redis.ResponseError:  # no stream yet
            return False

    await async_wait_until(served, what="ocpp16 serving OCPP_CONFIGURE")


def stored_address(database: Path) -> dict[str, str] | None:
    rows = query(database, "SELECT value FROM station_ocppstate WHERE name = ?", ADDRESS_STATE)
    return json.loads(rows[0]["value"]) if rows else None


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---- the rules, without a station ----------------------------------------------------------------

@pytest.mark.parametrize(("given", "kept"), [
    ("ws://csms.example:9000/ocpp/", "ws://csms.example:9000/ocpp"),
    ("  WSS://csms.example/ocpp16 ", "wss://csms.example/ocpp16"),
    ("ws://[::1]:8180", "ws://[::1]:8180"),
])
def test_a_csms_url_is_a_ws_or_wss_address_of_a_host(given: str, kept: str) -> None:
    assert parse_csms_url(given) == kept


@pytest.mark.parametrize(("given", "why"), [
    ("http://csms.example/ocpp", "ws:// or wss://"),
    ("csms.example/ocpp", "ws:// or wss://"),
    ("ws:///ocpp", "host"),
    ("ws://csms.example:99999/ocpp", "not a valid URL"),
    ("ws://csms.example:port/ocpp", "not a valid URL"),
    ("ws://[::1/ocpp", "not a valid URL"),
    ("ws://user:secret@csms.example/ocpp", "user or password"),
    ("ws://csms.example/ocpp?id=1", "query"),
    ("ws://csms.example/ocpp#here", "query or fragment"),
    ("ws://csms example/ocpp", "without spaces"),
    ("ws://csms.example/\x00", "without spaces"),
    ("", "ws:// or wss://"),
])
def test_a_bad_csms_url_is_refused_with_the_reason(given: str, why: str) -> None:
    with pytest.raises(InvalidValue, match=why):
        parse_csms_url(given)


@pytest.mark.parametrize(("given", "why"), [
    ("", "1-48 characters"), ("C" * 49, "1-48 characters"), ("CP 7", "without spaces"),
    ("CP\t7", "without spaces"), ("CP/7", "'/'"), ("CP:7", "':'"), ("CP\x007", "printable"),
])
def test_a_bad_charge_point_id_is_refused_with_the_reason(given: str, why: str) -> None:
    assert parse_charge_point_id("C" * 48) == "C" * 48
    assert parse_charge_point_id(" RDAM-123.äö ") == "RDAM-123.äö"
    with pytest.raises(InvalidValue, match=why):
        parse_charge_point_id(given)


# ---- a running station ---------------------------------------------------------------------------

async def test_a_new_csms_url_moves_the_station_there_and_survives_a_restart(
        bus: Bus, redis_client: redis.Redis, csms: Csms, second_csms: Csms, start_ocpp16,
        service_db: Path) -> None:
    """The station leaves the first CSMS, boots at the second (a CSMS that never registered it),
    publishes the new URL, and after a restart it still goes there, not to OCPP_CSMS_URL."""
    first = start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")
    await wait_until_served(redis_client, bus)

    reply = await configure(bus, "CsmsUrl", second_csms.url + "/")
    assert (reply.status, reply.reason) == ("Accepted", "")
    await second_csms.wait_for_call("BootNotification")
    assert second_csms.calls("BootNotification")[0].charge_point_id == CHARGE_POINT_ID
    await async_wait_until(lambda: _not_connected(csms), what="the first CSMS losing the station")
    link = await async_wait_until(lambda: _link_at(bus, second_csms.url), what="OCPP_LINK at the second CSMS")
    assert link.charge_point_id == CHARGE_POINT_ID
    assert stored_address(service_db) == {"csms_url": second_csms.url}

    again = await configure(bus, "CsmsUrl", second_csms.url)  # the URL in force: nothing happens
    assert again.status == "Accepted" and len(second_csms.handshakes) == 1

    assert await first.stopped() == 0
    start_ocpp16(csms.url)
    await second_csms.wait_for_call("BootNotification", count=2)
    assert len(csms.handshakes) == 1, "the environment's URL must not win over the operator's"


async def test_a_new_charge_point_id_is_the_path_the_csms_sees_and_stays_hidden_from_it(
        bus: Bus, redis_client: redis.Redis, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """The CSMS sees a new charge point: a handshake on the new path, then its BootNotification.
    Neither CsmsUrl nor ChargePointId can be read or changed by the CSMS (TC_040_1: an unknown
    key is NotSupported)."""
    start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")
    await wait_until_served(redis_client, bus)

    assert (await configure(bus, "ChargePointId", "RDAM-123")).status == "Accepted"
    boot = await csms.wait_for_call("BootNotification", count=2)
    assert boot.charge_point_id == "RDAM-123"
    assert [h.charge_point_id for h in csms.handshakes] == [CHARGE_POINT_ID, "RDAM-123"]
    assert stored_address(service_db) == {"charge_point_id": "RDAM-123"}
    link = await async_wait_until(lambda: _link_at(bus, csms.url), what="OCPP_LINK")
    assert link.charge_point_id == "RDAM-123"

    every_key = await csms.send("RDAM-123", call.GetConfiguration())
    names = {item["key"] for item in every_key.configuration_key}
    assert "HeartbeatInterval" in names and not names & {"CsmsUrl", "ChargePointId"}
    asked = await csms.send("RDAM-123", call.GetConfiguration(key=["CsmsUrl", "ChargePointId"]))
    assert asked.unknown_key == ["CsmsUrl", "ChargePointId"] and not asked.configuration_key
    for key, value in (("CsmsUrl", "ws://evil.example/ocpp"), ("ChargePointId", "STOLEN")):
        changed = await csms.send("RDAM-123", call.ChangeConfiguration(key=key, value=value))
        assert changed.status == "NotSupported"
    assert stored_address(service_db) == {"charge_point_id": "RDAM-123"}


async def test_a_stored_address_that_is_no_longer_valid_is_left_out(
        csms: Csms, start_ocpp16, service_db: Path) -> None:
    """A broken row (edited by hand, or from an older rule) never stops the station: the valid
    field is used, the invalid one falls back to the environment's value."""
    stored = json.dumps({"csms_url": "http://wrong", "charge_point_id": "CP-9"})
    with sqlite3.connect(service_db) as connection:
        connection.execute("INSERT INTO station_ocppstate (name, value, changed_at) "
                           "VALUES (?, ?, datetime('now'))", (ADDRESS_STATE, stored))
    process = start_ocpp16(csms.url)
    boot = await csms.wait_for_call("BootNotification")
    assert boot.charge_point_id == "CP-9"
    assert "stored csms_url must start with ws:// or wss://" in process.log()


async def test_bad_values_are_rejected_with_a_reason_and_change_nothing(
        bus: Bus, redis_client: redis.Redis, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """Nothing is stored, the link is not reopened; a refused AuthorizationKey is never repeated
    in the reason; SecurityProfile only goes up (TC_084) and needs a key for profile 1."""
    start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")
    await wait_until_served(redis_client, bus)

    refused = {
        ("CsmsUrl", "http://csms.example/ocpp"): "CsmsUrl must start with ws:// or wss://",
        ("CsmsUrl", "ws://csms.example/ocpp?x=1"): "CsmsUrl must not have a query",
        ("ChargePointId", "CP 7"): "ChargePointId must be printable, without spaces",
        ("ChargePointId", "A/B"): "ChargePointId must not contain '/'",
        ("SecurityProfile", "0"): "SecurityProfile may only go up (now 0, asked 0)",
        ("SecurityProfile", "4"): "SecurityProfile must be at most 3",
        ("SecurityProfile", "1"): "SecurityProfile 1 needs a valid AuthorizationKey first",
        ("SecurityProfile", "2"): "SecurityProfile 2 needs a valid AuthorizationKey first",
        ("AuthorizationKey", "too-short-key"): "AuthorizationKey must be 16-20 bytes",
    }
    for (key, value), reason in refused.items():
        reply = await configure(bus, key, value)
        assert reply.status == "Rejected" and reply.reason.startswith(reason), (key, value, reply)
        assert value not in reply.reason or key != "AuthorizationKey"
    assert stored_address(service_db) is None
    assert query(service_db, "SELECT key FROM station_ocppsetting WHERE key IN "
                             "('SecurityProfile', 'AuthorizationKey')") == []
    assert len(csms.handshakes) == 1 and csms.is_connected(CHARGE_POINT_ID)


async def test_security_profile_1_from_the_configurator_reconnects_with_basic_auth(
        bus: Bus, redis_client: redis.Redis, csms: Csms, start_ocpp16) -> None:
    """As ChangeConfiguration would (TC_073, TC_084): the key, then profile 1; each change is a
    ReconfigurationOfSecurityParameters event and a reconnect without a new BootNotification;
    the profile cannot be lowered again."""
    start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")
    await wait_until_served(redis_client, bus)

    assert (await configure(bus, "AuthorizationKey", KEY_TEXT)).status == "Accepted"
    assert (await configure(bus, "SecurityProfile", "1")).status == "Accepted"
    csms.behaviour.basic_auth_passwords[CHARGE_POINT_ID] = KEY_TEXT.encode()
    expected = basic(CHARGE_POINT_ID, KEY_TEXT.encode())
    await async_wait_until(lambda: _last_login(csms, expected), what=f"a Basic login; {csms.handshakes}")
    await csms.wait_connected(CHARGE_POINT_ID)
    lowered = await configure(bus, "SecurityProfile", "0")
    assert lowered.status == "Rejected" and "may only go up (now 1, asked 0)" in lowered.reason
    await csms.wait_for_call("SecurityEventNotification", count=3)  # + StartupOfTheDevice
    reasons = [c.payload.get("techInfo", "") for c in csms.calls("SecurityEventNotification")
               if c.payload["type"] == "ReconfigurationOfSecurityParameters"]
    assert reasons == ["AuthorizationKey changed", "SecurityProfile changed to 1"]
    assert len(csms.calls("BootNotification")) == 1


async def test_profile_2_needs_a_wss_url_and_keeps_it(
        bus: Bus, redis_client: redis.Redis, start_ocpp16, service_db: Path) -> None:
    """Profiles 2 and 3 need TLS and are never lowered: a ws:// CsmsUrl is Rejected while one is
    in force, and profile 2 is Rejected while the URL in force is ws://, whatever the URL was at
    start. No CSMS is needed: the command is answered offline too."""
    ca = CertificateAuthority.create("Operator Test Root")
    seed_root(service_db, ca.certificate)
    seed_configuration(service_db, AuthorizationKey=KEY_TEXT)
    secure_url = f"wss://127.0.0.1:{closed_port()}/ocpp"
    start_ocpp16(secure_url)
    await wait_until_served(redis_client, bus)

    assert (await configure(bus, "CsmsUrl", "ws://127.0.0.1:1/ocpp")).status == "Accepted"
    refused = await configure(bus, "SecurityProfile", "2")
    assert (refused.status, refused.reason) == ("Rejected", "SecurityProfile 2 needs a wss:// CSMS URL")
    assert (await configure(bus, "CsmsUrl", secure_url)).status == "Accepted"
    assert (await configure(bus, "SecurityProfile", "2")).status == "Accepted"
    insecure = await configure(bus, "CsmsUrl", "ws://127.0.0.1:1/ocpp")
    assert insecure.status == "Rejected"
    assert insecure.reason.startswith("CsmsUrl must be wss:// while SecurityProfile is 2")
    assert stored_address(service_db) == {"csms_url": secure_url}


async def test_profile_2_is_accepted_once_a_station_started_on_ws_was_moved_to_wss(
        bus: Bus, redis_client: redis.Redis, start_ocpp16, service_db: Path) -> None:
    """The prerequisites follow the URL in force now, not the one at start (a copy made at start
    refused profile 2 here until ocpp16 restarted)."""
    seed_root(service_db, CertificateAuthority.create("Operator Test Root").certificate)
    seed_configuration(service_db, AuthorizationKey=KEY_TEXT)
    start_ocpp16(f"ws://127.0.0.1:{closed_port()}/ocpp")
    await wait_until_served(redis_client, bus)

    assert (await configure(bus, "CsmsUrl", f"wss://127.0.0.1:{closed_port()}/ocpp")).status == "Accepted"
    assert (await configure(bus, "SecurityProfile", "2")).status == "Accepted"


def basic(user: str, password: bytes) -> str:
    """The header the CSMS must receive, built here independently of the station's code."""
    return "Basic " + base64.b64encode(user.encode() + b":" + password).decode()


async def _not_connected(csms: Csms) -> bool:
    return not csms.is_connected(CHARGE_POINT_ID)


async def _link_at(bus: Bus, url: str) -> OcppLink | None:
    link = await bus.get(contract.OCPP_LINK)
    return link if link is not None and link.connected and link.csms_url == url else None


async def _last_login(csms: Csms, header: str) -> bool:
    accepted = [h.authorization for h in csms.handshakes if h.status == 101]
    return bool(accepted) and accepted[-1] == header
