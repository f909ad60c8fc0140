"""The FIRMWARE_UPDATE job's state machine: download, verify, wait for idle, install, flash.

Each run reads the request's FirmwareUpdate row and continues from its stage, so a power cut
or a killed jobs service at any point resumes where it stopped (the runner re-queues the job):

    scheduled -> downloading -> downloaded -> verified -> waiting_idle -> installing
              -> (controller-firmware: flashing) -> installed;  any stage -> failed

Every stage change is persisted first, then reported to ocpp16 (progress.report) and written
to the job's log: a crash in between repeats a report (ocpp16 ignores a repeated status),
it never loses one.

What the job reports (ocpp16 maps it to the request's OCPP statuses, workers/ocpp16/firmware.py):
- the download fails after every attempt: DownloadFailed with the TransferFailure;
- the package is refused (workers/fota/package.py): a signature or signer problem is
  InvalidSignature (Security Whitepaper L01; ocpp16 also sends the security event
  InvalidFirmwareSignature); anything else (tampered ciphertext, truncated, unknown key,
  replayed old version, not a package) is InstallVerificationFailed: the file was downloaded
  completely, so DownloadFailed would be untrue, and it is never installed. A plain
  UpdateFirmware has neither status in OCPP 1.6: ocpp16 sends InstallationFailed for both
  ("could not install"), since Downloaded was already reported;
- SignatureVerified once verified and staged; InstallScheduled while waiting for install_at;
  Installing when chargepoint is asked to exit; Installed or InstallationFailed from
  ops/start.sh's status file (and, for controller-firmware, the update_controllers job).

The station is installed only while smartw holds it (no connector charges): the job asks
UPDATE_HOLD every few seconds, renewing the grant until chargepoint exits. Controllers are
flashed under a hold too (smartw starts over without one after the install restart): a session
starting meanwhile would make FLASH_CONTROLLER answer 'busy'; a 'busy' flash all the same (the
hold lapsed) waits for the station to be idle again and is retried, until FLASH_WAIT_S.

A lost EXIT_FOR_UPDATE reply (bus timeout, Redis gone as chargepoint stops) does not fail the
update: chargepoint may well have taken it and be exiting, so the job waits for start.sh's
status file as after an answered exit; only chargepoint's clear refusal fails it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from bus.enums import UpdateKind
from bus.messages import TransferFailure, TransferStatus
from webapp.env import StationEnv
from webapp.station.models import FirmwareUpdate, JobRecord
from workers.fota import package
from workers.fota.csms_signature import verify_csms_signature
from workers.fota.download import DownloadCancelled, DownloadError, download_with_retries
from workers.fota.errors import PackageRefused, RefusalReason
from workers.fota.install_status import InstallResult, read_install_status
from workers.fota.station_link import StationUnreachable, exit_for_update, release_hold, request_hold
from workers.fota.storage import PackageStore
from workers.fota.trust import TrustUnavailable, installed_version, load_trust
from workers.jobs import progress
from workers.jobs.base import JobFailed, JobKind, JobLog
from workers.jobs.update_controllers import failed_only_busy

if TYPE_CHECKING:  # workers/jobs/firmware.py runs this module
    from workers.jobs.firmware import FirmwareRequest

log = logging.getLogger(__name__)

Stage = FirmwareUpdate.Stage
PROGRESS_SAVE_S = 2.0
POLL_S = 1.0  # how often a wait looks at the clock, the job's row and the status file
HOLD_RETRY_S = 5.0  # how often smartw is asked for (or to renew) the hold
INSTALL_WAIT_S = 600.0  # chargepoint exits within seconds; then this job is stopped with it
FLASH_WAIT_S = 3600.0  # flashing, including waits for a 'busy' station to be idle
DPKG_DEB = "dpkg-deb"
ENDED = (JobRecord.Status.FINISHED, JobRecord.Status.FAILED, JobRecord.Status.ERRORED)
REPORTED_AT = {  # what was last reported on entering (or going through) each stage before installing
    Stage.DOWNLOADING: TransferStatus.DOWNLOADING, Stage.DOWNLOADED: TransferStatus.DOWNLOADED,
    Stage.VERIFIED: TransferStatus.SIGNATURE_VERIFIED, Stage.WAITING_IDLE: TransferStatus.SIGNATURE_VERIFIED}


class UpdateJob:
    """One run of the job over its FirmwareUpdate row."""

    def __init__(self, job: JobLog, request: FirmwareRequest, env: StationEnv) -> None:
        self.job = job
        self.request = request
        self.env = env
        self.store = PackageStore(env.packages_dir)
        self._progress_saved_at = 0.0
        self.update, created = FirmwareUpdate.objects.get_or_create(
            job_id=job.record_id, defaults={"location": request.location, "signed": request.signed,
                                            "request_id": request.request_id})
        if not created:
            job.info("resuming the update at stage %s", self.update.stage)
            # the stage was persisted before its report went out: a power cut in between lost the
            # report (it was on the bus), so it is sent again; ocpp16 drops a repeat
            if (status := REPORTED_AT.get(Stage(self.update.stage))) is not None:
                progress.report(job.record_id, status)

    @property
    def kind(self) -> UpdateKind:
        return UpdateKind(self.update.kind)

    def run(self) -> str:
        """Work through the stages; the installed package's path (relative to the data folder)."""
        steps: dict[str, Callable[[], None]] = {
            Stage.SCHEDULED: self._start, Stage.DOWNLOADING: self._download, Stage.DOWNLOADED: self._verify,
            Stage.VERIFIED: self._to_waiting_idle, Stage.WAITING_IDLE: self._wait_idle,
            Stage.INSTALLING: self._installing, Stage.FLASHING: self._flash}
        while self.update.stage not in (Stage.INSTALLED, Stage.FAILED):
            steps[self.update.stage]()
        if self.update.stage == Stage.FAILED:
            raise JobFailed(self.update.error)
        return self.update.package_file

    # ---- stages ------------------------------------------------------------------------------

    def _start(self) -> None:
        self._enter(Stage.DOWNLOADING, TransferStatus.DOWNLOADING)

    def _download(self) -> None:
        part = self.store.download_file(self.update.pk)
        finished = part.with_suffix(".pkg")
        if finished.is_file():  # renamed complete, then the power went before package_file was saved
            self.job.info("the download had completed before the restart: %s", finished.name)
            self._downloaded(finished)
            return
        if self.update.bytes_done:
            self.job.info("resuming the download after %d bytes", self.update.bytes_done)
        part.parent.mkdir(parents=True, exist_ok=True)
        try:
            download_with_retries(
                self.request.location, part, attempts=self.request.attempts,
                retry_interval_s=self.request.retry_interval_s, cancelled=self._cancelled,
                on_failure=lambda attempt, error: self.job.warning(
                    "download attempt %d of %d failed: %s", attempt, self.request.attempts, error),
                progress=self._download_progress)
        except DownloadCancelled:
            self._cancel_check()
            raise
        except DownloadError as error:
            self._fail(TransferStatus.DOWNLOAD_FAILED, error.failure, f"download failed: {error}")
            return
        self._cancel_check()
        os.replace(part, finished)  # atomic: a <id>.pkg is always a complete download
        self._downloaded(finished)

    def _downloaded(self, finished: Path) -> None:
        size = finished.stat().st_size
        self._save(bytes_done=size, bytes_total=size, package_file=self._relative(finished))
        try:
            header = package.inspect(finished)
        except PackageRefused as error:
            self._enter(Stage.DOWNLOADED, TransferStatus.DOWNLOADED, f"{size} bytes")
            self._refuse(error)
            return
        self._save(kind=header.kind.value, version=header.version)
        self._enter(Stage.DOWNLOADED, TransferStatus.DOWNLOADED,
                    f"{header.kind.value} {header.version}, {size} bytes")

    def _download_progress(self, done: int, total: int | None) -> None:
        """Keep bytes_done in the row (the configurator shows it), at most every PROGRESS_SAVE_S."""
        now = time.monotonic()
        if now - self._progress_saved_at >= PROGRESS_SAVE_S:
            self._progress_saved_at = now
            self._save(bytes_done=done, bytes_total=total)

    def _verify(self) -> None:
        path = self.env.data_dir / self.update.package_file
        if not self.update.package_file or not path.is_file():
            self.job.warning("the downloaded package is gone; downloading it again")
            self._save(bytes_done=0, bytes_total=None, package_file="")
            self._enter(Stage.DOWNLOADING)
            return
        try:
            if self.request.signature is not None:  # SignedUpdateFirmware: the CSMS's signature first
                verify_csms_signature(path, self.request.signature, self.request.signing_certificate or "")
            trust = load_trust(self.env)
            header = package.inspect(path)
            verified = package.verify(path, keys=trust.keys, roots=trust.roots,
                                      installed_version=installed_version(header.kind, self.env))
            staged = self.store.staged(header.kind)
            shutil.rmtree(staged, ignore_errors=True)  # what an earlier, abandoned update left
            files = package.extract(verified, trust.keys, staged)
        except PackageRefused as error:
            self._refuse(error)
            return
        except TrustUnavailable as error:
            self._fail(TransferStatus.INSTALL_VERIFICATION_FAILED, None,
                       f"the package cannot be verified: {error}", reason="no-trust")
            return
        debs = [file for file in files if file.suffix == ".deb"]
        problem = "the package holds no .deb to install" if not debs else self._deb_version_problem(
            header.kind, str(header.version), debs)
        if problem:
            shutil.rmtree(staged, ignore_errors=True)
            self._fail(TransferStatus.INSTALL_VERIFICATION_FAILED, None, problem,
                       reason=RefusalReason.BAD_FORMAT.value)
            return
        self.job.info("verified and staged: %s", ", ".join(file.name for file in files))
        self._enter(Stage.VERIFIED, TransferStatus.SIGNATURE_VERIFIED,
                    f"{header.kind.value} {header.version} staged")

    @staticmethod
    def _deb_version_problem(kind: UpdateKind, version: str, debs: list[Path]) -> str:
        """Why a controller-firmware package cannot be flashed: its deb installs the bundle into
        firmware_dir/<deb version> (ops/build-deb.sh) while flashing looks in
        firmware_dir/<header version>, so the two must agree; "" when they do."""
        if kind is not UpdateKind.CONTROLLER_FIRMWARE:
            return ""
        for deb in debs:
            try:
                result = subprocess.run([DPKG_DEB, "-f", str(deb), "Version"], capture_output=True,
                                        text=True, timeout=30, check=False)
            except (OSError, subprocess.TimeoutExpired) as error:
                return f"{deb.name}: its version cannot be read ({DPKG_DEB}: {error})"
            if result.returncode != 0:
                return f"{deb.name} is not a readable deb: {result.stderr.strip() or result.returncode}"
            if result.stdout.strip() != version:
                return (f"{deb.name} has version {result.stdout.strip()!r} but the package says {version}: "
                        "its bundle would install where flashing does not look")
        return ""

    def _to_waiting_idle(self) -> None:
        self._enter(Stage.WAITING_IDLE)

    def _wait_idle(self) -> None:
        install_at = self.request.install_at
        if install_at is not None and install_at > datetime.now(UTC):
            self.job.info("install scheduled at %s", install_at.isoformat())
            progress.report(self.job.record_id, TransferStatus.INSTALL_SCHEDULED,
                            detail=install_at.isoformat())
            while install_at > datetime.now(UTC):
                self._pause(min(POLL_S, (install_at - datetime.now(UTC)).total_seconds()))
        self._wait_for_hold("install")
        self._enter(Stage.INSTALLING, TransferStatus.INSTALLING)
        try:
            answer = exit_for_update(self.kind)
        except StationUnreachable as error:
            # the request may have arrived and chargepoint be stopping (taking Redis with it):
            # start.sh's status file tells; no status within INSTALL_WAIT_S fails it there
            self.job.warning("chargepoint's answer to the exit was lost (%s); waiting for the install", error)
        else:
            if not answer.accepted:
                release_hold("the install could not start")
                self._fail(TransferStatus.INSTALLATION_FAILED, None,
                           f"chargepoint did not exit for the install: {answer.reason}", reason="no-exit")
                return
            self.job.info("chargepoint exits for the install (ops/start.sh installs, then restarts it)")
        self._await_install()

    def _wait_for_hold(self, purpose: str) -> None:
        """Ask smartw's UPDATE_HOLD every HOLD_RETRY_S until it is granted (no connector charges)."""
        said = ""
        while True:
            try:
                reply = request_hold(f"{self.update.kind} {self.update.version}")
                if reply.granted:
                    break
                why = f"connector(s) {', '.join(map(str, reply.charging))} charging"
            except StationUnreachable as error:
                why = f"smartw does not answer ({error})"
            if why != said:
                self.job.info("waiting to %s: %s", purpose, why)
                said = why
            self._pause(HOLD_RETRY_S)
        self.job.info("smartw holds the station to %s", purpose)

    @contextmanager
    def _holding(self) -> Iterator[None]:
        """Renew the granted hold every HOLD_RETRY_S from a thread while the block runs (the
        flash job runs in this thread), then release it."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(HOLD_RETRY_S):
                try:
                    request_hold(f"{self.update.kind} {self.update.version}")
                except StationUnreachable as error:  # the next renewal tries again; the grant lasts HOLD_S
                    log.warning("renewing the update hold failed: %s", error)

        renewer = threading.Thread(target=renew, name="fota-hold", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()
            release_hold("the controllers are flashed")

    def _installing(self) -> None:
        """After a restart: the install's outcome, or, when it never happened (no status for it
        and the deb still staged), back to waiting for idle to ask again."""
        status = read_install_status(self.store.status_file(self.kind), since=self.update.stage_changed_at)
        staged = any(self.store.staged(self.kind).glob("*.deb"))
        if status.result is InstallResult.PENDING and staged:
            self.job.warning("the install did not happen; asking for it again")
            self._enter(Stage.WAITING_IDLE)
            return
        self._await_install()

    def _await_install(self) -> None:
        """Wait for ops/start.sh's status file (normally this job is stopped with the station
        first, and a later run reads it)."""
        deadline = time.monotonic() + INSTALL_WAIT_S
        path = self.store.status_file(self.kind)
        while (status := read_install_status(path, since=self.update.stage_changed_at)).result \
                is InstallResult.PENDING:
            if time.monotonic() > deadline:
                self._fail(TransferStatus.INSTALLATION_FAILED, None, "ops/start.sh wrote no install status",
                           reason="no-status")
                return
            self._pause(POLL_S)
        if status.result is InstallResult.FAILED:
            self._fail(TransferStatus.INSTALLATION_FAILED, None, f"dpkg: {status.message}", reason="dpkg")
            return
        self.job.info("ops/start.sh installed it: %s", status.message)
        if self.kind is UpdateKind.CONTROLLER_FIRMWARE:
            self._enter(Stage.FLASHING)
            return
        self._installed()

    def _flash(self) -> None:
        """Flash the controllers from the installed bundle: the update_controllers job, run in
        this process (the station has one jobs worker, so waiting for it on the queue would wait
        forever); after a restart its re-queued row is claimed here the same way."""
        deadline = time.monotonic() + FLASH_WAIT_S
        while True:
            status, last_line = self._run_flash_job(deadline)
            if status == JobRecord.Status.FINISHED:
                self._installed()
                return
            if not failed_only_busy(last_line) or time.monotonic() > deadline:
                break
            self.job.warning("smartw was busy (%s); flashing again once the station is idle", last_line)
            self._save(flash_job=None)  # a new run skips the controllers already flashed
        self._fail(TransferStatus.INSTALLATION_FAILED, None,
                   f"flashing the controllers {status}: {last_line}", reason="flash")

    def _run_flash_job(self, deadline: float) -> tuple[str, str]:
        """Run (or, after a restart, go on with) the update_controllers job under smartw's
        hold; its end status and last log line."""
        from workers.jobs import runner  # runner -> registry -> this module: import when used

        record = self.update.flash_job
        if record is None:
            bundle = self.env.firmware_dir / self.update.version
            record = JobRecord.objects.create(kind=JobKind.UPDATE_CONTROLLERS, params={
                "bundle_dir": str(bundle), "attempts": self.env.fota_flash_attempts})
            self._save(flash_job=record)
            self.job.info("flashing the controllers from %s: job #%s", bundle, record.pk)
        if record.status == JobRecord.Status.QUEUED:
            self._wait_for_hold("flash the controllers")
            with self._holding():
                runner.execute(record)
        while (status := JobRecord.objects.values_list("status", flat=True).get(pk=record.pk)) not in ENDED:
            if time.monotonic() > deadline:
                break
            self._pause(POLL_S)
        last_line = (JobRecord.objects.values_list("log", flat=True).get(pk=record.pk).strip()
                     .splitlines() or [status])[-1]
        return status, last_line

    def _installed(self) -> None:
        self._enter(Stage.INSTALLED, TransferStatus.INSTALLED, f"{self.update.kind} {self.update.version}")
        self._prune()

    # ---- bookkeeping ---------------------------------------------------------------------------

    def _enter(self, stage: Stage, status: TransferStatus | None = None, detail: str = "") -> None:
        """Persist the stage, then report it, then log it."""
        self._save(stage=stage, stage_changed_at=timezone.now())
        if status is not None:
            progress.report(self.job.record_id, status, detail=detail)
        self.job.info("stage %s%s", stage.value, f" ({status.value})" if status else "")

    def _refuse(self, error: PackageRefused) -> None:
        status = (TransferStatus.INVALID_SIGNATURE if error.reason.is_signature_problem
                  else TransferStatus.INSTALL_VERIFICATION_FAILED)
        self._fail(status, None, f"package refused: {error}", reason=error.reason.value)

    def _fail(self, status: TransferStatus, failure: TransferFailure | None, message: str, *,
              reason: str = "") -> None:
        if self.update.kind and self.update.stage in (Stage.VERIFIED, Stage.WAITING_IDLE):
            shutil.rmtree(self.store.staged(self.kind), ignore_errors=True)  # never installed by accident
        self._save(stage=Stage.FAILED, stage_changed_at=timezone.now(), failure=status.value,
                   failure_reason=reason or (failure.value if failure else ""), error=message)
        progress.report(self.job.record_id, status, failure, message)
        self.job.error("%s: %s", status.value, message)
        self._prune()

    def _save(self, **changes: object) -> None:
        for name, value in changes.items():
            setattr(self.update, name, value)
        self.update.save(update_fields=[*changes, "updated_at"])

    def _prune(self) -> None:
        for path in self.store.prune(self.env.fota_keep_packages):
            self.job.info("deleted the old package %s", path.name)

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self.env.data_dir))

    def _cancelled(self) -> bool:
        """True once the row is no longer running (runner.cancel ended it: a newer request)."""
        status = JobRecord.objects.filter(pk=self.job.record_id).values_list("status", flat=True).first()
        return status != JobRecord.Status.RUNNING

    def _cancel_check(self) -> None:
        if self._cancelled():
            if self.update.stage == Stage.WAITING_IDLE:
                release_hold("the update was cancelled")
            if self.update.kind and self.update.stage in (Stage.VERIFIED, Stage.WAITING_IDLE):
                shutil.rmtree(self.store.staged(self.kind), ignore_errors=True)
            self._save(stage=Stage.FAILED, stage_changed_at=timezone.now(), error="cancelled")
            raise JobFailed("cancelled")

    def _pause(self, seconds: float) -> None:
        self._cancel_check()
        time.sleep(max(seconds, 0.0))


def run_update(job: JobLog, request: FirmwareRequest) -> str:
    env: StationEnv = settings.STATION_ENV
    return UpdateJob(job, request, env).run()
