"""What the file transfer jobs reported on the bus (contract.FILE_TRANSFERS), for assertions."""

from __future__ import annotations

import asyncio

from bus import Bus, contract
from bus.messages import FileTransferProgress


def transfer_steps(job_id: int) -> list[FileTransferProgress]:
    """Every step job `job_id` published so far, oldest first (read synchronously)."""
    async def read() -> list[FileTransferProgress]:
        bus = Bus("test")
        try:
            _, deliveries = await bus.tail(contract.FILE_TRANSFERS, "0-0", block_ms=10)
        finally:
            await bus.close()
        return [delivery.message for delivery in deliveries if delivery.message.job_id == job_id]
    return asyncio.run(read())
