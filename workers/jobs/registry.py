"""Which function runs each job kind. Frozen at import; a kind without a handler fails loudly
at start-up rather than when an operator first asks for it (STYLE habit 13)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

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
