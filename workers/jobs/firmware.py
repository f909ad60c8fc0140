"""The FIRMWARE_UPDATE job: where an OCPP UpdateFirmware / SignedUpdateFirmware is handed over
once its retrieve time has come (ocpp16 starts it, workers/ocpp16/firmware.py). The work is
the over-the-air update state machine of workers/fota/update.py: download, verify, wait until
no connector charges, install through ops/start.sh, flash the controllers; it resumes from its
persisted stage when the job runs again after a restart (a resumable kind).
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from bus.messages import TransferFailure, TransferStatus
from workers.fota.update import run_update
from workers.jobs import progress
from workers.jobs.archive import describe
from workers.jobs.base import JobFailed, JobLog

DOWNLOAD_BUDGET_S = 1800  # the job's time limit: per download attempt (and the wait after it) ...
INSTALL_BUDGET_S = 6 * 3600  # ... plus waiting for idle, installing and flashing


class FirmwareRequest(BaseModel):
    """What the CSMS asked for; the job's parameters. `location` may carry a password (kept in
    the row like any param, never logged)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    location: str = Field(min_length=1, max_length=512)
    retrieve_at: AwareDatetime
    install_at: AwareDatetime | None = None
    attempts: int = Field(ge=1, le=10)
    retry_interval_s: int = Field(ge=0, le=3600)
    signing_certificate: str | None = Field(default=None, description="SignedUpdateFirmware: PEM, checked "
                                            "against a ManufacturerRootCertificate before the job was made")
    signature: str | None = Field(default=None,
                                  description="SignedUpdateFirmware: base64 signature of the file")
    request_id: int | None = Field(default=None, description="SignedUpdateFirmware's requestId")

    @property
    def signed(self) -> bool:
        return self.signature is not None

    def to_params(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def time_limit_s(self) -> int:
        """Long enough for every download attempt, a scheduled install time and the install."""
        later = 0.0 if self.install_at is None else (self.install_at - self.retrieve_at).total_seconds()
        waiting = max(int(later), 0)
        return self.attempts * (DOWNLOAD_BUDGET_S + self.retry_interval_s) + waiting + INSTALL_BUDGET_S


def update_firmware(job: JobLog, params: dict[str, Any]) -> str:
    """The job's handler; returns the installed package's path relative to STATION_DATA_DIR."""
    try:
        request = FirmwareRequest.model_validate(params)
    except ValidationError as error:
        progress.report(job.record_id, TransferStatus.DOWNLOAD_FAILED, TransferFailure.BAD_REQUEST,
                        "invalid firmware request")
        raise JobFailed(f"invalid firmware request: {describe(error)}") from error
    return run_update(job, request)
