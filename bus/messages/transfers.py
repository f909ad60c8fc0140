"""File transfers (diagnostics and log uploads, firmware downloads): progress the jobs report to ocpp16."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from bus.messages.base import Message, utcnow


class TransferStatus(StrEnum):
    """Where a file transfer job stands. The value is the OCPP status it becomes: uploads are
    DiagnosticsStatus / UploadLogStatus, downloads and installs FirmwareStatus (OCPP 1.6 and the
    Security Whitepaper's signed statuses)."""

    UPLOADING = "Uploading"
    UPLOADED = "Uploaded"
    UPLOAD_FAILED = "UploadFailed"
    DOWNLOAD_SCHEDULED = "DownloadScheduled"
    DOWNLOADING = "Downloading"
    DOWNLOADED = "Downloaded"
    DOWNLOAD_FAILED = "DownloadFailed"
    DOWNLOAD_PAUSED = "DownloadPaused"
    SIGNATURE_VERIFIED = "SignatureVerified"
    INVALID_SIGNATURE = "InvalidSignature"
    INSTALL_VERIFICATION_FAILED = "InstallVerificationFailed"
    INSTALL_SCHEDULED = "InstallScheduled"
    INSTALLING = "Installing"
    INSTALL_REBOOTING = "InstallRebooting"
    INSTALLED = "Installed"
    INSTALLATION_FAILED = "InstallationFailed"


class TransferFailure(StrEnum):
    """Why a transfer failed (with a *Failed status), closed so ocpp16 can map it to OCPP codes."""

    BAD_REQUEST = "bad_request"  # the URL (no host) or another parameter cannot be used
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"  # a scheme other than ftp, ftps, http, https
    PERMISSION_DENIED = "permission_denied"  # the server refused our credentials (FTP 530, HTTP 401/403)
    TRANSFER_FAILED = "transfer_failed"  # every attempt failed (network, server error)
    NOT_AVAILABLE = "not_available"  # this version of the station cannot do it


class FileTransferProgress(Message):
    """A step of a file transfer job (diagnostics/log upload, firmware download and install),
    published by the job as it happens; ocpp16 turns it into the matching status notification."""

    job_id: int = Field(ge=1, description="the JobRecord row of the transfer (ocpp16 knows which "
                        "OCPP request it started it for)")
    status: TransferStatus
    failure: TransferFailure | None = Field(default=None, description="with a failed status: why")
    detail: str = Field(default="", max_length=500, description="what happened, for logs")
    at: datetime = Field(default_factory=utcnow)
