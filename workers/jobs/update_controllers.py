"""The UPDATE_CONTROLLERS job (update_fw): flash every charge controller from an installed
controller-firmware bundle, one at a time.

The job never touches the RS485 line: smartw owns it and flashes on request
(contract.FLASH_CONTROLLER). The job checks the whole bundle first (every file's SHA-256:
a damaged bundle flashes nothing), then goes through station.toml's connectors in order, picks
each one's file from the manifest, skips a controller that already reports the target version
(its device state on the bus), and flashes the others. One controller failing does not stop the
others; the job ends failed with every failure named. Re-running it (e.g. after a power cut)
skips the controllers already done, so it is safe to run again from the start.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bus import Bus, BusRequestError, contract
from bus.messages import FlashControllerReply, FlashControllerRequest
from workers.common.station_config import ConnectorConfig, load_from_settings
from workers.fota.bundle import MANIFEST_NAME, BundleError, FirmwareTarget, check_file, load_manifest
from workers.jobs.archive import describe
from workers.jobs.base import JobFailed, JobLog

ORIGIN = "jobs"
FLASH_TIMEOUT_S = contract.FLASH_CONTROLLER.timeout_s


class ControllerUpdateRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bundle_dir: str = Field(min_length=1, max_length=1000, description="the installed bundle's folder")
    attempts: int = Field(default=3, ge=1, le=10, description="uploads per controller before it fails")


@dataclass(frozen=True)
class Planned:
    connector_id: int
    target: FirmwareTarget
    image: Path


def update_controllers(job: JobLog, params: dict[str, Any]) -> str:
    """The job's handler: returns "" (it produces no file); JobFailed names every failure."""
    try:
        request = ControllerUpdateRequest.model_validate(params)
    except ValidationError as error:
        raise JobFailed(f"invalid controller update request: {describe(error)}") from error
    plan = _plan(job, Path(request.bundle_dir), load_from_settings().connectors)
    failures = [failure for planned in plan
                if (failure := _update_one(job, planned, request.attempts)) is not None]
    if failures:
        raise JobFailed("; ".join(failures))
    return ""


def _plan(job: JobLog, folder: Path, connectors: list[ConnectorConfig]) -> list[Planned]:
    try:
        manifest = load_manifest(folder / MANIFEST_NAME)
    except BundleError as error:
        raise JobFailed(f"firmware bundle refused: {error}") from error
    job.info("firmware bundle %s from %s", manifest.version, folder)
    plan = []
    for connector in connectors:
        target = manifest.target_for(connector.id, connector.controller.model)
        if target is None:
            job.info("connector %s: the bundle has no firmware for its %s controller",
                     connector.id, connector.controller.model)
            continue
        try:
            image = check_file(folder, target)  # checked by load_manifest; again in case it changed since
        except BundleError as error:
            raise JobFailed(f"firmware bundle refused: {error}") from error
        plan.append(Planned(connector.id, target, image))
    return plan


def _update_one(job: JobLog, planned: Planned, attempts: int) -> str | None:
    """Flash one controller unless it is up to date; None when it ends at the target version,
    else the failure as the job's summary names it."""
    cid, version = planned.connector_id, planned.target.version
    current = asyncio.run(_reported_version(cid))
    if current == version:
        job.info("connector %s: controller already at %s, skipped", cid, version)
        return None
    job.info("connector %s: flashing %s (now %s) from %s", cid, version, current or "unknown",
             planned.target.file)
    try:
        reply = asyncio.run(_flash(cid, planned.image, attempts))
    except BusRequestError as error:
        job.error("connector %s: smartw did not answer the flash request: %s", cid, error)
        return f"connector {cid}: {error.code.value}"
    return _record(job, cid, version, reply)


def _record(job: JobLog, cid: int, version: str, reply: FlashControllerReply) -> str | None:
    if reply.ok and reply.version == version:
        job.info("connector %s: flashed %s in %d attempt(s)", cid, version, reply.attempts_used)
        return None
    error = reply.error or "wrong_version"
    job.error("connector %s: %s after %d attempt(s), controller reports %s: %s", cid, error,
              reply.attempts_used, reply.version or "unknown", reply.detail or f"expected {version}")
    return failure_text(cid, error, reply.attempts_used)


BUSY = "busy"  # FlashControllerReply.error when smartw found the connector busy (a session)


def failure_text(connector_id: int, error: str, attempts_used: int) -> str:
    """One controller's failure in the job's summary ("; "-joined after "failed: ")."""
    return f"connector {connector_id}: {error} after {attempts_used} attempts"


def failed_only_busy(last_line: str) -> bool:
    """True when the job's final log line says every failure was smartw finding a connector
    busy: flashing again once the station is idle may succeed (the FOTA job does)."""
    _, _, summary = last_line.partition("failed: ")
    failures = summary.split("; ") if summary else []
    return bool(failures) and all(f": {BUSY} after " in failure for failure in failures)


async def _reported_version(connector_id: int) -> str | None:
    bus = Bus(ORIGIN)
    try:
        state = await bus.get(contract.DEVICE, device=f"controller:{connector_id}")
    finally:
        await bus.close()
    return state.firmware_version if state is not None and state.available else None


async def _flash(connector_id: int, image: Path, attempts: int) -> FlashControllerReply:
    bus = Bus(ORIGIN)
    try:
        return await bus.request(contract.FLASH_CONTROLLER, FlashControllerRequest(
            connector_id=connector_id, image_path=str(image), attempts=attempts), timeout_s=FLASH_TIMEOUT_S)
    finally:
        await bus.close()
