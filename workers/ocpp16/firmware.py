"""UpdateFirmware and SignedUpdateFirmware, the OCPP side (OCPP 1.6 §4.5, §5.19, §7.25; Security
Whitepaper ed.2 L01).

A request is checked, recorded (OcppState `firmware_request`: a restart keeps it), answered,
and at its retrieve time handed to the FIRMWARE_UPDATE job (workers/jobs/firmware.py). Each
step the job reports becomes a FirmwareStatusNotification (UpdateFirmware) or a
SignedFirmwareStatusNotification with the requestId (SignedUpdateFirmware), through the
persisted lane; a job that ends without saying how is reported from its row (DownloadFailed
before anything was downloaded, else InstallationFailed). A job queued again after a restart
(its kind is resumable: workers/fota/update.py continues from its persisted stage) is still in
progress, whether queued or running.

The job reports what happened in the Security Whitepaper's terms; a plain UpdateFirmware
hears the OCPP 1.6 subset: InvalidSignature and InstallVerificationFailed (a package refused
after it was downloaded) become InstallationFailed, and the steps 1.6 has no status for
(DownloadScheduled, SignatureVerified, InstallScheduled...) are recorded but not sent.
InvalidSignature also raises the security event InvalidFirmwareSignature, for either request
(a wrongly signed package is an attack whoever asked for it); Installed raises FirmwareUpdated.

SignedUpdateFirmware: the signing certificate must chain to an installed ManufacturerRootCertificate
(firmware_signing.py), else InvalidCertificate and the security event
InvalidFirmwareSigningCertificate after the answer. A retrieveDateTime still to come is
reported DownloadScheduled. A new request while one is in progress replaces it (its job is
cancelled): AcceptedCanceled for a signed one.
UpdateFirmware: once a ManufacturerRootCertificate is installed the station does signed
updates only and answers CALLERROR NotSupported (L01.FR.20), so unsigned firmware can never go
around the signature check; a station without one takes it.
TriggerMessage(FirmwareStatusNotification): the last OCPP 1.6 status of the update in progress
(`plain_status`: a step 1.6 has no status for leaves it as it was, the update is still in
progress), Idle when none (Idle is only ever sent when triggered).
ExtendedTriggerMessage: a SignedFirmwareStatusNotification with the last status and its
requestId, Idle after Installed or when there was none (L01).
A job that cannot be started (the database refuses its row even after its lock timeout) is
reported DownloadFailed at once rather than tried again every second: a fault that outlasts
the timeout is not passing, and the CSMS, told, can send the request again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.db import DatabaseError
from ocpp.v16.enums import Action, CertificateUse, FirmwareStatus, UpdateFirmwareStatus

from bus import Bus
from bus.messages import FileTransferProgress, TransferStatus
from webapp.station.models import JobRecord
from workers.jobs import api as jobs
from workers.jobs.upload import UploadError, parse_location
from workers.ocpp16.firmware_signing import check_signing_certificate
from workers.ocpp16.notices import Notices
from workers.ocpp16.persisted import read_state, write_state
from workers.ocpp16.security.certificates import InvalidCertificate
from workers.ocpp16.security.events import SecurityEventType
from workers.ocpp16.security.feature import Security
from workers.ocpp16.security.provisioned import installed_by_csms
from workers.ocpp16.transfer_jobs import (
    ENDED_BADLY,
    InvalidRequest,
    TransferWatcher,
    attempts_and_interval,
    cancel_job,
    job_status,
    start_job,
)

log = logging.getLogger(__name__)

STATE = "firmware_request"
GROUP = "ocpp16-firmware"
MANUFACTURER_ROOT = CertificateUse.manufacturer_root_certificate
PLAIN_STATUSES = frozenset({  # FirmwareStatusNotification of OCPP 1.6 (without Idle)
    FirmwareStatus.downloaded, FirmwareStatus.download_failed, FirmwareStatus.downloading,
    FirmwareStatus.installation_failed, FirmwareStatus.installing, FirmwareStatus.installed})
FINAL = frozenset({  # the update is over
    FirmwareStatus.download_failed, FirmwareStatus.installation_failed, FirmwareStatus.installed,
    FirmwareStatus.invalid_signature, FirmwareStatus.install_verification_failed})
AS_PLAIN = {  # statuses a plain UpdateFirmware cannot carry, as the 1.6 status that says it
    FirmwareStatus.invalid_signature: FirmwareStatus.installation_failed,
    FirmwareStatus.install_verification_failed: FirmwareStatus.installation_failed,
}
SECURITY_EVENTS = {
    FirmwareStatus.invalid_signature: SecurityEventType.INVALID_FIRMWARE_SIGNATURE,
    FirmwareStatus.installed: SecurityEventType.FIRMWARE_UPDATED,
}
BEFORE_DOWNLOAD = frozenset({None, FirmwareStatus.download_scheduled, FirmwareStatus.downloading,
                             FirmwareStatus.download_paused})
MAX_AFTER = 10  # answers whose @after never ran are forgotten
DUE_CHECK_S = 1.0  # a request is handed to its job within about this after its retrieve time

AfterAnswer = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class FirmwareUpdate:
    """The request as recorded in OcppState."""

    request: dict[str, Any]  # jobs.FirmwareRequest parameters
    signed: bool
    request_id: int | None = None  # SignedUpdateFirmware's requestId
    job_id: int | None = None  # set once handed to the job
    status: str | None = None  # the last step, as the request's kind says it (sent or not)
    done: bool = False
    plain_status: str | None = None  # the last step that has an OCPP 1.6 status, as that status

    @property
    def retrieve_at(self) -> datetime:
        return datetime.fromisoformat(self.request["retrieve_at"])


class FirmwareUpdates:
    def __init__(self, bus: Bus, notices: Notices, security: Security) -> None:
        self._notices = notices
        self._security = security
        self._update: FirmwareUpdate | None = None
        self._after: dict[str, AfterAnswer] = {}
        self._lock = asyncio.Lock()
        self._loaded = False
        self._watcher = TransferWatcher(bus, GROUP, self._progress, self._check, check_s=DUE_CHECK_S)

    async def run(self) -> None:
        await self._load()
        await self._watcher.run()

    async def _load(self) -> None:
        if self._loaded:
            return
        state = await read_state(STATE)
        try:
            self._update = None if state is None else _recorded(state)
        except (TypeError, ValueError) as error:  # written by another version, or damaged
            log.error("the recorded firmware request cannot be read and is dropped: %s", error)
            await write_state(STATE, None)
        self._loaded = True

    # ---- for the handlers ----------------------------------------------------------------------

    async def signed_only(self) -> bool:
        """True once the CSMS installed a ManufacturerRootCertificate (plain UpdateFirmware refused);
        one provisioned at activation does not count (security/provisioned.py says why)."""
        return bool(await installed_by_csms(self._security.store, MANUFACTURER_ROOT))

    async def plain(self, call_id: str, location: str, retrieve_at: datetime, retries: int | None,
                    retry_interval: int | None) -> None:
        """UpdateFirmware: InvalidRequest for an unusable location or counts."""
        request = _request(location, retrieve_at, None, retries, retry_interval)
        self._after_answer(call_id, partial(self._accept, FirmwareUpdate(request.to_params(), signed=False)))
        log.info("UpdateFirmware from %s at %s accepted", parse_location(location).describe(),
                 retrieve_at.isoformat())

    async def signed(self, call_id: str, request_id: int, location: str, retrieve_at: datetime,
                     install_at: datetime | None, signing_certificate: str, signature: str,
                     retries: int | None, retry_interval: int | None) -> UpdateFirmwareStatus:
        """SignedUpdateFirmware's status; InvalidRequest for unusable counts."""
        try:
            request = _request(location, retrieve_at, install_at, retries, retry_interval,
                               signing_certificate=signing_certificate, signature=signature,
                               request_id=request_id)
        except InvalidRequest as error:
            log.warning("SignedUpdateFirmware %s Rejected: %s", request_id, error)
            return UpdateFirmwareStatus.rejected
        roots = [item.certificate for item in await self._security.store.installed(MANUFACTURER_ROOT)]
        try:
            check_signing_certificate(signing_certificate, roots, datetime.now(UTC))
        except InvalidCertificate as error:
            log.warning("SignedUpdateFirmware %s: InvalidCertificate: %s", request_id, error)
            self._after_answer(call_id, partial(self._security.event,
                                                SecurityEventType.INVALID_FIRMWARE_SIGNING_CERTIFICATE,
                                                f"SignedUpdateFirmware {request_id}: {error}"))
            return UpdateFirmwareStatus.invalid_certificate
        await self._load()
        replaces = self._update is not None and not self._update.done
        update = FirmwareUpdate(request.to_params(), signed=True, request_id=request_id)
        self._after_answer(call_id, partial(self._accept, update))
        log.info("SignedUpdateFirmware %s accepted%s", request_id, "; it replaces the one in progress"
                 if replaces else "")
        return UpdateFirmwareStatus.accepted_canceled if replaces else UpdateFirmwareStatus.accepted

    def _after_answer(self, call_id: str, work: AfterAnswer) -> None:
        self._after[call_id] = work
        for stale in list(self._after)[:-MAX_AFTER]:
            del self._after[stale]

    async def answered(self, call_id: str) -> None:
        """The handler's @after: what follows the answer (record and start, or the event)."""
        work = self._after.pop(call_id, None)
        if work is not None:
            await work()

    def triggered_status(self) -> FirmwareStatus:
        """TriggerMessage(FirmwareStatusNotification): the last 1.6 status of an update in progress."""
        update = self._update
        if update is None or update.done or update.plain_status is None:
            return FirmwareStatus.idle
        return FirmwareStatus(update.plain_status)

    def triggered_signed_status(self) -> tuple[FirmwareStatus, int | None]:
        """ExtendedTriggerMessage(FirmwareStatusNotification): the last status and its requestId."""
        update = self._update
        if update is None or update.status in (None, FirmwareStatus.installed):
            return FirmwareStatus.idle, None
        return FirmwareStatus(update.status), update.request_id

    # ---- the request's life --------------------------------------------------------------------

    async def _accept(self, update: FirmwareUpdate) -> None:
        async with self._lock:
            await self._load()
            previous = self._update
            if previous is not None and not previous.done and previous.job_id is not None:
                await cancel_job(previous.job_id, "replaced by a newer firmware request from the CSMS")
            await self._record(update)
            log.info("firmware request recorded (%s); the job starts at %s",
                     parse_location(update.request["location"]).describe(), update.retrieve_at.isoformat())
            if update.signed and update.retrieve_at > datetime.now(UTC):
                await self._tell(update, TransferStatus.DOWNLOAD_SCHEDULED)
            await self._start_if_due()

    async def _start_if_due(self) -> None:
        update = self._update
        waiting = update is not None and not update.done and update.job_id is None
        if update is None or not waiting or update.retrieve_at > datetime.now(UTC):
            return
        request = jobs.FirmwareRequest(**update.request)
        try:
            job_id = await start_job(lambda: jobs.request_firmware_update(request), STATE,
                                     lambda job_id: asdict(replace(update, job_id=job_id)))
        except DatabaseError as error:
            log.error("firmware request could not be handed to the jobs service: %s", error)
            await self._tell(update, TransferStatus.DOWNLOAD_FAILED, f"the job could not be started: {error}")
            return
        self._update = replace(update, job_id=job_id)
        log.info("firmware request handed to job #%s", job_id)

    async def _progress(self, step: FileTransferProgress) -> None:
        async with self._lock:
            update = self._update
            if update is None or update.done or update.job_id != step.job_id or update.status == step.status:
                return
            await self._tell(update, step.status, step.detail)

    async def _check(self) -> None:
        async with self._lock:
            await self._start_if_due()
            update = self._update
            if update is None or update.done or update.job_id is None:
                return
            status = await job_status(update.job_id)
            ended = status is None or status == JobRecord.Status.FINISHED or status in ENDED_BADLY
            if not ended or not self._watcher.ended_for_sure(update.job_id):
                return
            if status == JobRecord.Status.FINISHED:  # the job ends finished only once installed
                await self._tell(update, TransferStatus.INSTALLED, "the job finished")
            else:
                lost = TransferStatus.DOWNLOAD_FAILED if update.status in BEFORE_DOWNLOAD \
                    else TransferStatus.INSTALLATION_FAILED
                await self._tell(update, lost, f"the job ended {status or 'without a row'}")

    async def _tell(self, update: FirmwareUpdate, status: TransferStatus, detail: str = "") -> None:
        """Queue the notification, then record it (a crash in between repeats, never loses it)."""
        step = FirmwareStatus(str(status))
        wire = step if update.signed else AS_PLAIN.get(step, step)
        if update.signed:
            await self._notices.queue_persisted(Action.signed_firmware_status_notification,
                                                {"status": wire, "requestId": update.request_id})
        elif wire in PLAIN_STATUSES:
            await self._notices.queue_persisted(Action.firmware_status_notification, {"status": wire})
        else:
            log.info("firmware step %s has no OCPP 1.6 status; not sent", wire)
        plain = AS_PLAIN.get(step, step)
        await self._record(replace(update, status=wire, done=wire in FINAL,
                                   plain_status=plain if plain in PLAIN_STATUSES else update.plain_status))
        log.info("firmware request: %s%s", step, f" ({detail})" if detail else "")
        if step in SECURITY_EVENTS:
            await self._security.event(SECURITY_EVENTS[step], detail[:255])

    async def _record(self, update: FirmwareUpdate) -> None:
        await write_state(STATE, asdict(update))
        self._update = update


def _request(location: str, retrieve_at: datetime, install_at: datetime | None, retries: int | None,
             retry_interval: int | None, *, signing_certificate: str | None = None,
             signature: str | None = None, request_id: int | None = None) -> jobs.FirmwareRequest:
    try:
        parse_location(location)
    except UploadError as error:
        raise InvalidRequest(f"location: {error}") from None
    attempts, interval = attempts_and_interval(retries, retry_interval)
    return jobs.FirmwareRequest(location=location, retrieve_at=retrieve_at, install_at=install_at,
                                attempts=attempts, retry_interval_s=interval,
                                signing_certificate=signing_certificate, signature=signature,
                                request_id=request_id)


def _recorded(state: dict[str, Any]) -> FirmwareUpdate:
    update = FirmwareUpdate(**state)
    jobs.FirmwareRequest(**update.request)  # still a request the job takes
    return update
