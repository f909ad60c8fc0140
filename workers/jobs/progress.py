"""How a file transfer job tells ocpp16 where it stands: one `FileTransferProgress` on the bus
stream contract.FILE_TRANSFERS per step, named by the job's JobRecord id.

Jobs are synchronous (RQ), the bus client is async: each report runs its own short event loop
with its own connection (a handful of reports per job). A report that cannot be published
(Redis down) is logged and dropped, never fatal to the job: ocpp16 also watches the job's
row and reports the outcome from it (workers/ocpp16/diagnostics.py, firmware.py).
"""

from __future__ import annotations

import asyncio
import logging

from bus import Bus, contract
from bus.messages import FileTransferProgress, TransferFailure, TransferStatus
from bus.service import REDIS_ERRORS

log = logging.getLogger(__name__)

ORIGIN = "jobs"


def report(job_id: int, status: TransferStatus, failure: TransferFailure | None = None,
           detail: str = "") -> bool:
    """Publish one step of job `job_id`; False when the bus could not take it."""
    message = FileTransferProgress(job_id=job_id, status=status, failure=failure, detail=detail[:500])
    try:
        asyncio.run(_publish(message))
    except REDIS_ERRORS as error:
        log.error("job #%s: %s not reported on the bus (%s); ocpp16 will read the job's row",
                  job_id, status, error)
        return False
    return True


async def _publish(message: FileTransferProgress) -> None:
    bus = Bus(ORIGIN)
    try:
        await bus.publish(contract.FILE_TRANSFERS, message)
    finally:
        await bus.close()
