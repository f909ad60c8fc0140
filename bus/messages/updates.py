"""Over-the-air updates: what the update jobs ask smartw (workers/jobs: firmware, update_fw),
and the configurator's "Update from URL", which ocpp16 takes like a CSMS UpdateFirmware.

smartw owns the charge controllers and their RS485 lines, so the jobs never touch them: they
ask smartw to hold the station for an install (granted only while no connector charges) and to
flash a controller with an image from the installed firmware bundle.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from bus.messages.base import Message, utcnow

MAX_HOLD_S = 900.0


class UpdateHoldRequest(Message):
    """Hold the station for an install (`hold`), or release it. A granted hold lets no new
    session start and shows every connector Unavailable ('updating') until it is released,
    smartw restarts, or `hold_s` passes without a renewal (a job that died frees the station)."""

    hold: bool
    reason: str = Field(default="", max_length=200, description="for the log, e.g. 'software 2.1.0'")
    hold_s: float = Field(default=120.0, gt=0, le=MAX_HOLD_S,
                          description="how long a grant lasts unless renewed")


class UpdateHoldReply(Message):
    granted: bool = Field(description="hold: True only if no connector charges; release: always True")
    charging: list[int] = Field(default_factory=list,
                                description="connectors with a session (why not granted)")
    detail: str = Field(default="", max_length=500)


class FlashControllerRequest(Message):
    """Flash connector N's charge controller with the image file at `image_path` (a firmware
    bundle file, already checked against its manifest's SHA-256)."""

    connector_id: int = Field(ge=1)
    image_path: str = Field(min_length=1, max_length=1000)
    attempts: int = Field(default=3, ge=1, le=10)


class FlashControllerReply(Message):
    """The flasher's FlashResult (workers/drivers/controller_flasher.py) as smartw saw it."""

    ok: bool
    attempts_used: int = Field(ge=0)
    version: str | None = Field(default=None, description="the version the controller reports afterwards")
    error: str | None = Field(default=None, description="FlashError value, or 'busy' / 'unknown_connector' / "
                              "'unreadable_image' / 'no_controller'")
    detail: str = Field(default="", max_length=1000)


class UpdateFirmwareRequest(Message):
    """The configurator's "Update from URL": ocpp16 takes it exactly as a CSMS UpdateFirmware
    (recorded, handed to the FIRMWARE_UPDATE job, every step reported to the CSMS with
    FirmwareStatusNotification), so the CSMS learns what the station installs."""

    location: str = Field(min_length=1, max_length=512,
                          description="http(s):// or ftp(s):// URL of the update package; may carry a "
                                      "password (never logged)")
    retrieve_at: datetime = Field(default_factory=utcnow, description="when to start downloading (UTC)")
    attempts: int = Field(default=3, ge=1, le=10, description="downloads tried before DownloadFailed")
    retry_interval_s: int = Field(default=60, ge=0, le=3600, description="wait between attempts, s")


class UpdateFirmwareReply(Message):
    accepted: bool
    detail: str = Field(default="", max_length=500,
                        description="why not (signed updates only, unusable location), for people")
