"""The FIRMWARE_UPDATE job: where an OCPP UpdateFirmware / SignedUpdateFirmware is handed over
once its retrieve time has come (ocpp16 starts it, workers/ocpp16/firmware.py).

Downloading, verifying and installing firmware is not part of this version (it is built by the
over-the-air update work). Until then the job tells the truth instead of pretending progress:
it reports DownloadFailed (failure `not_available`: the station could not download the
firmware, which is what happened) and ends failed with the reason in its row, so the operator
sees it in the configurator and the CSMS is not left waiting for a status that never comes.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from bus.messages import TransferFailure, TransferStatus
from workers.jobs import progress
from workers.jobs.archive import describe
from workers.jobs.base import JobFailed, JobLog

NOT_AVAILABLE = "downloading and installing firmware is not available in this version of the station software"


class FirmwareRequest(BaseModel):
    """What the CSMS asked for; the job's parameters."""

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

    def to_params(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def update_firmware(job: JobLog, params: dict[str, Any]) -> str:
    """The job's handler: reports DownloadFailed (not available) and fails with the reason."""
    try:
        FirmwareRequest.model_validate(params)
    except ValidationError as error:
        progress.report(job.record_id, TransferStatus.DOWNLOAD_FAILED, TransferFailure.BAD_REQUEST,
                        "invalid firmware request")
        raise JobFailed(f"invalid firmware request: {describe(error)}") from error
    job.error("%s; the request stays recorded and is reported DownloadFailed", NOT_AVAILABLE)
    progress.report(job.record_id, TransferStatus.DOWNLOAD_FAILED, TransferFailure.NOT_AVAILABLE,
                    NOT_AVAILABLE)
    raise JobFailed(NOT_AVAILABLE)
