"""update_fw end to end: the UPDATE_CONTROLLERS job flashes simulated controllers through smartw.

The station runs as in the field (`chargepoint --sim`, the controllers on a simulated RS485
line), with only the services flashing needs; the job runs here with run_sync and reaches
smartw over the bus, as the jobs service does. The bootloader's faults are injected with
`manage.py sim fault controllerN flash_crc|flash_fail`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings

from bus import Bus, contract
from bus.enums import ConnectorStatus, StartSource
from bus.messages import FlashControllerReply, FlashControllerRequest, StartRequest, UpdateHoldRequest
from tests.support.station import Station
from tests.support.waiting import wait_until
from webapp.station.models import JobRecord
from workers.drivers.controllers.bootloader_protocol import build_image
from workers.jobs.base import JobKind
from workers.jobs.runner import run_sync

pytestmark = pytest.mark.django_db
FLASHED = (1, 2)  # the bundle has firmware for these connectors' controllers only
NO_CSMS = "ws://127.0.0.1:9/ocpp"


@pytest.fixture
def station(start_station: Callable[..., Station], monkeypatch: pytest.MonkeyPatch) -> Station:
    started = start_station(NO_CSMS, only=["sim", "counters", "smartw"])
    monkeypatch.setattr(settings, "STATION_ENV",
                        dataclasses.replace(settings.STATION_ENV, station_config=started.config_path))
    for cid in FLASHED:
        wait_until(lambda cid=cid: firmware(started, cid), what=f"controller {cid}'s firmware version")
    return started


def write_bundle(folder: Path, version: tuple[int, int, int]) -> Path:
    folder.mkdir()
    image = build_image(version, bytes(range(256)) * 4)  # 1 KiB of application: 9 packets
    (folder / "cc.bin").write_bytes(image)
    text = ".".join(map(str, version))
    entry = {"connector_ids": list(FLASHED), "file": "cc.bin", "version": text,
             "sha256": hashlib.sha256(image).hexdigest()}
    manifest = {"version": text, "controllers": [entry]}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def firmware(station: Station, connector_id: int) -> str | None:
    state = station.bus.get(contract.DEVICE, device=f"controller:{connector_id}")
    return state.firmware_version if state is not None and state.available else None


def status(station: Station, connector_id: int) -> tuple[ConnectorStatus, str] | None:
    state = station.bus.get(contract.CONNECTOR, connector_id=connector_id)
    return (state.status, state.info) if state is not None else None


def run_job(bundle: Path, attempts: int) -> JobRecord:
    return run_sync(JobKind.UPDATE_CONTROLLERS, {"bundle_dir": str(bundle), "attempts": attempts})


async def hold_and_try_a_start() -> tuple[bool, str]:
    bus = Bus("test")
    try:
        reply = await bus.request(contract.UPDATE_HOLD, UpdateHoldRequest(hold=True, reason="test"))
        start = await bus.request(contract.START, StartRequest(
            connector_id=1, id_tag="0A00B1C2D3", source=StartSource.REMOTE, authorized=True))
    finally:
        await bus.close()
    return reply.granted, start.reason


async def release_hold() -> None:
    bus = Bus("test")
    try:
        assert (await bus.request(contract.UPDATE_HOLD, UpdateHoldRequest(hold=False))).granted
    finally:
        await bus.close()


async def ask_flash(connector_id: int, image_path: str) -> FlashControllerReply:
    bus = Bus("test")
    try:
        return await bus.request(contract.FLASH_CONTROLLER, FlashControllerRequest(
            connector_id=connector_id, image_path=image_path), timeout_s=10)
    finally:
        await bus.close()


def test_both_controllers_are_flashed_the_faulty_one_with_more_attempts_and_a_rerun_skips_them(
        station: Station, tmp_path: Path) -> None:
    granted, refusal = asyncio.run(hold_and_try_a_start())
    assert granted and refusal == "updating"
    wait_until(lambda: status(station, 3) == (ConnectorStatus.UNAVAILABLE, "updating"),
               what="connector 3 shown held for the update")
    asyncio.run(release_hold())
    station.sim("fault", "controller2", "flash_crc")
    bundle = write_bundle(tmp_path / "bundle", (1, 1, 0))

    record = run_job(bundle, attempts=3)

    assert record.status == JobRecord.Status.FINISHED, record.log
    assert "connector 1: flashed 1.1.0 in 1 attempt(s)" in record.log
    assert "connector 2: flashed 1.1.0 in 3 attempt(s)" in record.log
    assert "connector 3: the bundle has no firmware" in record.log
    for cid in FLASHED:
        wait_until(lambda cid=cid: firmware(station, cid) == "1.1.0", what=f"controller {cid} at 1.1.0")
    assert firmware(station, 3) == "1.0.0"
    rerun = run_job(bundle, attempts=3)
    assert rerun.status == JobRecord.Status.FINISHED, rerun.log
    assert rerun.log.count("already at 1.1.0, skipped") == 2


def test_a_controller_out_of_attempts_fails_the_job_the_other_is_flashed_and_it_serves_again(
        station: Station, tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "bundle", (2, 0, 1))
    assert asyncio.run(ask_flash(9, str(bundle / "cc.bin"))).error == "unknown_connector"
    assert asyncio.run(ask_flash(1, str(tmp_path / "missing.bin"))).error == "unreadable_image"
    (tmp_path / "garbage.bin").write_bytes(b"not a firmware image")
    assert asyncio.run(ask_flash(1, str(tmp_path / "garbage.bin"))).error == "unreadable_image"
    station.sim("fault", "controller2", "flash_fail")

    record = run_job(bundle, attempts=2)

    assert record.status == JobRecord.Status.FAILED, record.log
    assert "failed: connector 2: upload_failed after 2 attempts" in record.log
    assert firmware(station, 1) == "2.0.1"
    assert firmware(station, 2) == "1.0.0"
    wait_until(lambda: status(station, 2) == (ConnectorStatus.AVAILABLE, ""),
               what="connector 2 in service again")


    damaged = write_bundle(tmp_path / "damaged", (3, 0, 0))
    (damaged / "cc.bin").write_bytes(b"EVFW" + bytes(40))  # replaced after the manifest was written
    refused = run_job(damaged, attempts=1)
    assert refused.status == JobRecord.Status.FAILED, refused.log
    assert "firmware bundle refused: cc.bin: SHA-256 is" in refused.log
    assert firmware(station, 1) == "2.0.1"
