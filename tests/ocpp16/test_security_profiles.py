"""Security profiles 0-3 end to end: HTTP Basic with the AuthorizationKey, TLS with the CSMS root
the station trusts, client certificates, raising the profile (never lowering it), falling back
when a raised profile cannot connect, and the security events a refused connection leaves.
ocpp16 runs as a subprocess against the test CSMS, with certificates made in the test."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from ocpp.v16 import call

from tests.ocpp16.conftest import CHARGE_POINT_ID, Ocpp16Process
from tests.support.database import query
from tests.support.tls import (
    CertificateAuthority,
    seed_configuration,
    seed_root,
    seed_station_certificate,
    server_context,
)
from tests.support.waiting import async_wait_until
from workers.ocpp16.config_keys import InvalidValue
from workers.ocpp16.security.profiles import (
    Prerequisites,
    check_authorization_key,
    check_profile_change,
    password_bytes,
)
from workers.ocpp16.wsconnect import FailureKind, basic_authorization, classify, redact_frame
from workers.sim.csms import Csms, ReceivedCall

T = TypeVar("T")
OCTT_KEY_TEXT = b"OCA_OCTT_admin_test"  # TC_073 sends its hex
OCPP_J_EXAMPLE_KEY = "0001020304050607FFFFFFFFFFFFFFFFFFFFFFFF"  # OCPP-J §6.2.2


def basic(password: bytes) -> str:
    """The header the CSMS must receive, built here independently of the station's code."""
    return "Basic " + base64.b64encode(CHARGE_POINT_ID.encode() + b":" + password).decode()


def setting(database: Path, key: str) -> str | None:
    rows = query(database, "SELECT value FROM station_ocppsetting WHERE key = ?", key)
    return rows[0]["value"] if rows else None


def security_events(database: Path) -> list[tuple[str, str]]:
    return [(row["type"], row["tech_info"])
            for row in query(database, "SELECT type, tech_info FROM station_securityevent ORDER BY id")]


def all_logs(process: Ocpp16Process, data_dir: Path) -> str:
    files = sorted((data_dir / "logs").glob("**/*")) if (data_dir / "logs").exists() else []
    return process.log() + "".join(path.read_text(errors="replace") for path in files if path.is_file())


async def eventually(probe: Callable[[], T], *, what: str, timeout_s: float = 10.0) -> T:
    async def check() -> T:
        return probe()
    return await async_wait_until(check, timeout_s=timeout_s, what=what)


async def change(csms: Csms, key: str, value: str) -> str:
    """ChangeConfiguration from the CSMS; the station's status."""
    return str((await csms.send(CHARGE_POINT_ID, call.ChangeConfiguration(key=key, value=value))).status)


def notifications(csms: Csms, event_type: str) -> list[ReceivedCall]:
    return [c for c in csms.calls("SecurityEventNotification") if c.payload["type"] == event_type]


def accepted_handshakes(csms: Csms) -> list[str | None]:
    return [handshake.authorization for handshake in csms.handshakes if handshake.status == 101]


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("Test CSMS Root")


# ---- rules, without a connection -----------------------------------------------------------------

def test_basic_header_is_built_from_the_key_bytes_as_in_the_ocpp_j_example() -> None:
    """OCPP-J §6.2.2 / TC_085: the hex key is decoded; the header carries the raw bytes."""
    password = password_bytes(OCPP_J_EXAMPLE_KEY)
    assert password == bytes.fromhex(OCPP_J_EXAMPLE_KEY)
    assert basic_authorization("AL1000", password) == "Basic QUwxMDAwOgABAgMEBQYH////////////////"
    assert password_bytes("a-text-password-17") == b"a-text-password-17"  # not hex: its UTF-8 text
    assert password_bytes("0123456789abcdef") == b"0123456789abcdef"  # 16 hex chars = text, not 8 bytes


@pytest.mark.parametrize("key", ["", "short", "x" * 21, "0" * 31, "0" * 42, "g" * 32])
def test_authorization_keys_that_are_not_16_to_20_bytes_are_refused(key: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        check_authorization_key(key)
    assert key not in str(refused.value) or not key  # the value is a secret: never repeated


def test_a_profile_change_needs_what_the_new_profile_uses() -> None:
    """A05: only upwards; 1/2 need a key, 2/3 a wss URL and a CentralSystemRootCertificate,
    3 the charge point certificate (TC_084: a downgrade is Rejected)."""
    ready = Prerequisites(current=1, authorization_key=OCPP_J_EXAMPLE_KEY, url_is_tls=True,
                          central_system_roots=1, station_certificate=True)
    check_profile_change(2, ready)
    check_profile_change(3, ready)
    cases = [
        (1, ready, "only go up"), (0, ready, "only go up"),
        (1, Prerequisites(0, "", True, 1, True), "AuthorizationKey"),
        (2, Prerequisites(1, OCPP_J_EXAMPLE_KEY, False, 1, True), "wss://"),
        (2, Prerequisites(1, OCPP_J_EXAMPLE_KEY, True, 0, True), "CentralSystemRootCertificate"),
        (3, Prerequisites(2, OCPP_J_EXAMPLE_KEY, True, 1, False), "charge point certificate"),
    ]
    for new, have, reason in cases:
        with pytest.raises(InvalidValue, match=reason):
            check_profile_change(new, have)


def test_frame_logs_never_show_the_authorization_key() -> None:
    secret = OCTT_KEY_TEXT.hex()
    frame = f'[2,"7","ChangeConfiguration",{{"key":"AuthorizationKey","value":"{secret}"}}]'
    assert secret not in redact_frame(frame) and "***" in redact_frame(frame)
    assert secret not in redact_frame(frame[:-5])  # cut short: hidden whole
    other = '[2,"8","ChangeConfiguration",{"key":"HeartbeatInterval","value":"30"}]'
    assert redact_frame(other) == other
    asked = '[2,"9","GetConfiguration",{"key":["AuthorizationKey"]}]'
    assert redact_frame(asked) == asked


def test_a_refused_tls_handshake_is_told_apart_from_a_network_error() -> None:
    refused = ssl.SSLCertVerificationError(1, "certificate verify failed")
    refused.verify_message = "unable to get local issuer certificate"
    assert classify(refused).kind is FailureKind.SERVER_CERTIFICATE
    assert classify(ConnectionRefusedError(111, "refused")).kind is FailureKind.NETWORK


# ---- profile 1: HTTP Basic ---------------------------------------------------------------------

async def test_basic_auth_carries_the_hex_decoded_key(csms: Csms, start_ocpp16, service_db: Path,
                                                       tmp_path: Path) -> None:
    """TC_085: profile 1, the AuthorizationKey as 40 hex digits; the CSMS gets exactly
    `Basic base64(id:raw bytes)`, and the key appears in no log."""
    seed_configuration(service_db, SecurityProfile="1", AuthorizationKey=OCPP_J_EXAMPLE_KEY)
    csms.behaviour.basic_auth_passwords[CHARGE_POINT_ID] = bytes.fromhex(OCPP_J_EXAMPLE_KEY)
    process = start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")
    assert accepted_handshakes(csms) == [basic(bytes.fromhex(OCPP_J_EXAMPLE_KEY))]
    assert OCPP_J_EXAMPLE_KEY.lower() not in all_logs(process, tmp_path / "data").lower()


async def test_a_new_authorization_key_is_used_at_once_by_reconnecting(
        csms: Csms, start_ocpp16, service_db: Path, tmp_path: Path) -> None:
    """TC_073 (A01): ChangeConfiguration(AuthorizationKey) is Accepted, then the station drops
    the connection and logs in again with the new password; no new BootNotification; the key
    is never returned by GetConfiguration nor logged; a refused login is a security event."""
    old, new = b"old-password-1234", OCTT_KEY_TEXT
    seed_configuration(service_db, SecurityProfile="1", AuthorizationKey=old.decode())
    csms.behaviour.basic_auth_passwords[CHARGE_POINT_ID] = old
    process = start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")

    refused = await change(csms, "AuthorizationKey", "short")
    assert refused == "Rejected"
    changed = await change(csms, "AuthorizationKey", new.hex().upper())
    assert changed == "Accepted"
    csms.behaviour.basic_auth_passwords[CHARGE_POINT_ID] = new
    await eventually(lambda: accepted_handshakes(csms)[-1] == basic(new),
                     what=f"a login with the new password {basic(new)}; {csms.handshakes[-3:]}")
    await csms.wait_connected(CHARGE_POINT_ID)
    print("HANDSHAKES", csms.handshakes, basic(new), basic(old))
    event = await csms.wait_for_call("SecurityEventNotification", count=2)  # + StartupOfTheDevice
    assert {c.payload["type"] for c in csms.calls("SecurityEventNotification")} >= {
        "StartupOfTheDevice", "ReconfigurationOfSecurityParameters"}
    assert new.hex() not in str(event.payload).lower()
    assert len(csms.calls("BootNotification")) == 1
    hidden = await csms.send(CHARGE_POINT_ID, call.GetConfiguration(key=["AuthorizationKey"]))
    assert hidden.unknown_key == ["AuthorizationKey"] and not hidden.configuration_key
    assert setting(service_db, "AuthorizationKey") == new.hex().upper()
    logs = all_logs(process, tmp_path / "data").lower()
    assert new.hex() not in logs and old.decode() not in logs


async def test_a_wrong_password_is_retried_and_logged_once_per_streak(
        csms: Csms, start_ocpp16, service_db: Path) -> None:
    """HTTP 401 is retried with back-off; FailedToAuthenticateAtCentralSystem is logged once for
    the streak and told to the CSMS once the station gets in."""
    seed_configuration(service_db, SecurityProfile="1", AuthorizationKey="the-right-one-1234")
    csms.behaviour.basic_auth_passwords[CHARGE_POINT_ID] = b"something-else-123"
    start_ocpp16(csms.url)
    await eventually(lambda: csms.handshake_rejections >= 2, what="two refused logins")
    csms.behaviour.basic_auth_passwords[CHARGE_POINT_ID] = b"the-right-one-1234"
    await csms.wait_for_call("BootNotification")
    notified = await eventually(lambda: notifications(csms, "FailedToAuthenticateAtCentralSystem"),
                                what="the event told to the CSMS")
    assert len(notified) == 1
    assert [kind for kind, _ in security_events(service_db)].count("FailedToAuthenticateAtCentralSystem") == 1


async def test_frames_beyond_1_mib_are_read_and_a_ping_interval_change_reconnects(
        csms: Csms, start_ocpp16) -> None:
    """The transport takes frames up to 4 MiB (websockets' default of 1 MiB would close the
    connection on a big local list). WebSocketPingInterval is fixed per connection (websockets):
    a change reconnects; negative values are Rejected."""
    start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")
    await csms.send_raw(CHARGE_POINT_ID, json.dumps([2, "big-1", "NoSuchAction", {"data": "x" * 3_000_000}]))
    await eventually(lambda: csms.raw_replies, what="the answer to a 3 MB frame")
    assert csms.raw_replies[0][:3] == [4, "big-1", "NotImplemented"] and len(accepted_handshakes(csms)) == 1
    negative = await change(csms, "WebSocketPingInterval", "-1")
    assert negative == "Rejected"
    changed = await change(csms, "WebSocketPingInterval", "0")
    assert changed == "Accepted"
    await eventually(lambda: len(accepted_handshakes(csms)) == 2, what="a second connection")
    assert len(csms.calls("BootNotification")) == 1


async def test_profile_2_never_connects_to_an_unsecured_url(csms: Csms, start_ocpp16,
                                                            service_db: Path) -> None:
    """Profile 2 needs wss:// (raising it on ws:// is Rejected: see the prerequisites test); a
    station stored with profile 2 and a ws:// URL does not connect at all, with a clear error."""
    seed_configuration(service_db, SecurityProfile="2", AuthorizationKey=OCPP_J_EXAMPLE_KEY)
    process = start_ocpp16(csms.url)
    await eventually(lambda: "not connecting to an unsecured one" in process.log(), what="the refusal")
    assert csms.handshakes == []


# ---- profiles 2 and 3: TLS -------------------------------------------------------------------------

async def test_tls_server_certificate_valid_and_invalid(
        tls_csms, ca: CertificateAuthority, start_ocpp16, service_db: Path, tmp_path: Path) -> None:
    """TC_078 then TC_086: a CSMS certificate from a CA the station does not trust is refused
    (InvalidCentralSystemCertificate, logged once, told to the CSMS after reconnecting); with a
    certificate under the installed CentralSystemRootCertificate the station connects over TLS
    with Basic auth. The root in use cannot be deleted (M04)."""
    stranger = CertificateAuthority.create("Someone Else")
    csms = await tls_csms(server_context(stranger, tmp_path / "tls"))
    csms.behaviour.basic_auth_passwords[CHARGE_POINT_ID] = bytes.fromhex(OCPP_J_EXAMPLE_KEY)
    seed_root(service_db, ca.certificate)
    seed_configuration(service_db, SecurityProfile="2", AuthorizationKey=OCPP_J_EXAMPLE_KEY)
    start_ocpp16(csms.url)
    await eventually(lambda: ("InvalidCentralSystemCertificate" in dict(security_events(service_db))),
                           what="the security event")
    assert accepted_handshakes(csms) == []

    await csms.stop()
    csms.ssl_context = server_context(ca, tmp_path / "tls")
    await csms.start()
    await csms.wait_for_call("BootNotification", timeout_s=15)
    assert accepted_handshakes(csms) == [basic(bytes.fromhex(OCPP_J_EXAMPLE_KEY))]
    notified = await eventually(lambda: notifications(csms, "InvalidCentralSystemCertificate"),
                                what="the event told to the CSMS")
    assert len(notified) == 1
    root = await csms.send(CHARGE_POINT_ID, call.GetInstalledCertificateIds(
        certificate_type="CentralSystemRootCertificate"))
    deleted = await csms.send(CHARGE_POINT_ID, call.DeleteCertificate(
        certificate_hash_data=root.certificate_hash_data[0]))
    assert deleted.status == "Failed"


async def test_security_profile_goes_up_with_a_reconnect_and_never_down(
        tls_csms, ca: CertificateAuthority, start_ocpp16, service_db: Path, tmp_path: Path) -> None:
    """TC_083: 1 -> 2 is Accepted, logged, and the station reconnects under profile 2.
    TC_084: lowering it, or setting it again, is Rejected; 3 without a certificate too (A05)."""
    csms = await tls_csms(server_context(ca, tmp_path / "tls"))
    csms.behaviour.basic_auth_passwords[CHARGE_POINT_ID] = bytes.fromhex(OCPP_J_EXAMPLE_KEY)
    seed_root(service_db, ca.certificate)
    seed_configuration(service_db, SecurityProfile="1", AuthorizationKey=OCPP_J_EXAMPLE_KEY)
    start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")

    raised = await change(csms, "SecurityProfile", "2")
    assert raised == "Accepted"
    await eventually(lambda: len(accepted_handshakes(csms)) == 2, what="a reconnect")
    await csms.wait_connected(CHARGE_POINT_ID)
    assert setting(service_db, "SecurityProfile") == "2"
    for value in ("1", "0", "2", "3"):
        answer = await change(csms, "SecurityProfile", value)
        assert answer == "Rejected", value
    assert setting(service_db, "SecurityProfile") == "2" and len(accepted_handshakes(csms)) == 2
    events = security_events(service_db)
    assert ("ReconfigurationOfSecurityParameters", "SecurityProfile changed to 2") in events
    assert len(csms.calls("BootNotification")) == 1


async def test_client_certificate_logs_in_without_basic_auth(
        tls_csms, ca: CertificateAuthority, start_ocpp16, service_db: Path, tmp_path: Path) -> None:
    """TC_087: profile 3, the CSMS requires a client certificate under its CA: the station
    presents its own (CN = charge point id) and sends no Authorization header. Its own
    certificate cannot be deleted with DeleteCertificate (M04)."""
    csms = await tls_csms(server_context(ca, tmp_path / "tls", client_ca=ca))
    seed_root(service_db, ca.certificate)
    seed_configuration(service_db, SecurityProfile="3", AuthorizationKey=OCPP_J_EXAMPLE_KEY)
    station = seed_station_certificate(tmp_path / "data", ca, CHARGE_POINT_ID)
    start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")
    [handshake] = csms.handshakes
    assert handshake.client_common_name == CHARGE_POINT_ID and handshake.authorization is None
    assert int(handshake.client_serial or "0", 16) == station.serial_number
    own = {"hashAlgorithm": "SHA256", "issuerNameHash": _sha256(ca.certificate.subject.public_bytes()),
           "issuerKeyHash": _issuer_key_hash(ca), "serialNumber": f"{station.serial_number:x}"}
    deleted = await csms.send(CHARGE_POINT_ID, call.DeleteCertificate(certificate_hash_data=own))
    assert deleted.status == "Failed"


async def test_a_raised_profile_that_cannot_connect_falls_back(
        tls_csms, ca: CertificateAuthority, start_ocpp16, service_db: Path, tmp_path: Path) -> None:
    """A05: 2 -> 3 is Accepted (the station has a certificate), but this CSMS still wants Basic
    auth: after a few refused attempts the station goes back to profile 2, logs it, and is
    connected again."""
    csms = await tls_csms(server_context(ca, tmp_path / "tls"))
    csms.behaviour.basic_auth_passwords[CHARGE_POINT_ID] = bytes.fromhex(OCPP_J_EXAMPLE_KEY)
    seed_root(service_db, ca.certificate)
    seed_configuration(service_db, SecurityProfile="2", AuthorizationKey=OCPP_J_EXAMPLE_KEY)
    seed_station_certificate(tmp_path / "data", ca, CHARGE_POINT_ID)
    start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification")

    raised = await change(csms, "SecurityProfile", "3")
    assert raised == "Accepted"
    await eventually(lambda: len(accepted_handshakes(csms)) == 2, timeout_s=20,
                           what="connected again after falling back")
    assert setting(service_db, "SecurityProfile") == "2"
    assert csms.handshake_rejections >= 5 and accepted_handshakes(csms)[-1] is not None
    kinds = [kind for kind, info in security_events(service_db)]
    assert "FailedToAuthenticateAtCentralSystem" in kinds
    assert any("could not connect" in info for _, info in security_events(service_db))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _issuer_key_hash(ca: CertificateAuthority) -> str:
    point = ca.certificate.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return _sha256(point)  # an EC key's subjectPublicKey bits are its uncompressed point
