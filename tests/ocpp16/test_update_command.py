"""The configurator's "Update from URL" (contract.OCPP_UPDATE_FIRMWARE) goes down the real ocpp16
path of a CSMS UpdateFirmware (workers/ocpp16/firmware.py): recorded, handed to the
FIRMWARE_UPDATE job, and every step told to the CSMS with FirmwareStatusNotification, so the
CSMS learns what the station installs. Refused with the reason for a location the station cannot
download from, and once the station takes signed updates only. ocpp16 and the jobs run as
processes against the test CSMS (tests/ocpp16/conftest.py); firmware that cannot be fetched (a
closed port) is Downloading, then DownloadFailed."""

from __future__ import annotations

import json
from pathlib import Path

import redis
from ocpp.v16 import call

from bus import Bus, contract
from bus.messages import UpdateFirmwareReply, UpdateFirmwareRequest
from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.database import query
from tests.support.tls import CertificateAuthority
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms

UNREACHABLE = "127.0.0.1:1"  # nothing listens: every download attempt fails at once
PASSWORD = "fw-secret"


async def _online(csms: Csms, start_ocpp16, start_jobs, redis_client: redis.Redis, bus: Bus) -> None:
    process = start_ocpp16(csms.url)
    start_jobs(process)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)
    stream = bus.names.command(contract.OCPP_UPDATE_FIRMWARE.name)

    async def served() -> bool:
        try:
            return any(group["name"] == "ocpp16" for group in redis_client.xinfo_groups(stream))
        except redis.ResponseError:  # no stream yet
            return False

    await async_wait_until(served, what="ocpp16 serving OCPP_UPDATE_FIRMWARE")


async def _ask(bus: Bus, location: str, **fields: int) -> UpdateFirmwareReply:
    request = UpdateFirmwareRequest(location=location, **fields)
    return await bus.request(contract.OCPP_UPDATE_FIRMWARE, request)


def _recorded(service_db: Path) -> dict:
    rows = query(service_db, "SELECT value FROM station_ocppstate WHERE name = 'firmware_request'")
    return json.loads(rows[0]["value"]) if rows else {}


async def test_the_command_is_an_update_firmware_the_csms_hears_about(
        csms: Csms, start_ocpp16, start_jobs, redis_client: redis.Redis, bus: Bus, service_db: Path) -> None:
    await _online(csms, start_ocpp16, start_jobs, redis_client, bus)

    reply = await _ask(bus, f"ftp://fw:{PASSWORD}@{UNREACHABLE}/fw-2.1.pkg", attempts=2, retry_interval_s=0)

    assert reply.accepted and "download starts" in reply.detail
    await csms.wait_for_call("FirmwareStatusNotification", count=2, timeout_s=20)
    assert [c.payload for c in csms.calls("FirmwareStatusNotification")] == [
        {"status": "Downloading"}, {"status": "DownloadFailed"}]
    recorded = _recorded(service_db)
    assert (recorded["signed"], recorded["status"], recorded["done"]) == (False, "DownloadFailed", True)
    assert (recorded["request"]["attempts"], recorded["request"]["retry_interval_s"]) == (2, 0)
    assert recorded["job_id"] is not None


async def test_an_unusable_location_or_a_signed_only_station_refuses_it_saying_why(
        csms: Csms, start_ocpp16, start_jobs, redis_client: redis.Redis, bus: Bus, service_db: Path) -> None:
    await _online(csms, start_ocpp16, start_jobs, redis_client, bus)

    for location, says in [("sftp://updates.example/fw.pkg", "protocol 'sftp'"),
                           ("https:///fw.pkg", "host"), ("not a url", "protocol")]:
        reply = await _ask(bus, location)
        assert not reply.accepted and says in reply.detail, (location, reply)
    assert _recorded(service_db) == {}

    root = CertificateAuthority.create("Manufacturer Root")
    installed = await csms.send(CHARGE_POINT_ID, call.InstallCertificate(
        certificate_type="ManufacturerRootCertificate", certificate=root.pem))
    assert str(installed.status) == "Accepted"

    reply = await _ask(bus, f"https://{UNREACHABLE}/fw.pkg")

    assert not reply.accepted and "signed firmware only" in reply.detail
    assert _recorded(service_db) == {} and not csms.calls("FirmwareStatusNotification")
