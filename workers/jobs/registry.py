"""Which function runs each job kind. Frozen at import; a kind without a handler fails loudly
at start-up rather than when an operator first asks for it (STYLE habit 13)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from workers.fota.update import FLASH_WAIT_S
from workers.jobs import archive, diagnostics_upload, firmware, hmi_screenshot, update_controllers
from workers.jobs.base import Handler, JobKind

HANDLERS: Mapping[JobKind, Handler] = MappingProxyType({
    JobKind.DIAGNOSTICS_ARCHIVE: archive.build_archive,
    JobKind.DIAGNOSTICS_UPLOAD: diagnostics_upload.upload_diagnostics,
    JobKind.FIRMWARE_UPDATE: firmware.update_firmware,
    JobKind.HMI_SCREENSHOT: hmi_screenshot.take_screenshot,
    JobKind.UPDATE_CONTROLLERS: update_controllers.update_controllers,
})

_missing = set(JobKind) - set(HANDLERS)
if _missing:
    raise RuntimeError(f"job kinds without a handler: {sorted(_missing)}")

_TIME_LIMITS: Mapping[JobKind, Callable[[dict[str, Any]], int]] = MappingProxyType({
    JobKind.DIAGNOSTICS_UPLOAD:
        lambda params: diagnostics_upload.UploadRequest.model_validate(params).time_limit_s(),
    JobKind.FIRMWARE_UPDATE: lambda params: firmware.FirmwareRequest.model_validate(params).time_limit_s(),
    JobKind.UPDATE_CONTROLLERS: lambda _params: int(FLASH_WAIT_S),
})


def time_limit_s(kind: str, params: dict[str, Any]) -> int | None:
    """The time limit a job of this kind was given when it was submitted (None: the queue's),
    for queuing it again after Redis lost it."""
    limit = _TIME_LIMITS.get(JobKind(kind)) if kind in set(JobKind) else None
    if limit is None:
        return None
    try:
        return limit(params)
    except ValidationError:
        return None  # the handler refuses such parameters with the reason
