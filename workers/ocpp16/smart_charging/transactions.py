"""Which transactions run, for TxProfiles and Relative schedules.

The truth is the Transaction table (ocpp16 writes it when smartw's session events arrive); a
change is noticed through the contract.OCPP_TRANSACTION keys, which ocpp16 writes right after
the table, read in one round trip every poll. The table is read again on each change of the
keys, and every RESYNC_S anyway, so a lost Redis key cannot remove a profile by mistake.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from bus import Bus, contract
from webapp.station.models import Transaction
from workers.ocpp16.smart_charging.model import RunningTransaction
from workers.ocpp16.txqueue import db

RESYNC_S = 30.0
Snapshot = tuple[tuple[str, int | None] | None, ...]


def _running() -> dict[int, RunningTransaction]:
    rows = Transaction.objects.filter(stopped_at__isnull=True).order_by("started_at")
    return {row.connector_id: RunningTransaction(row.connector_id, row.session_id, row.started_at,
                                                 row.transaction_id) for row in rows}


async def running_transactions() -> dict[int, RunningTransaction]:
    """Connector -> the transaction running there, from the table."""
    return await db(_running)


class TransactionWatcher:
    def __init__(self, bus: Bus, connector_ids: Sequence[int]) -> None:
        self._bus = bus
        self._keys = [(contract.OCPP_TRANSACTION, {"connector_id": c}) for c in connector_ids]
        self._seen: Snapshot | None = None
        self._read_at = 0.0

    async def changed(self) -> bool:
        """True when the keys changed since the last call, or a resync is due."""
        reads = await self._bus.get_many(self._keys)
        snapshot = tuple(None if read.value is None else (read.value.session_id, read.value.transaction_id)
                         for read in reads)
        due = time.monotonic() - self._read_at >= RESYNC_S
        if snapshot == self._seen and not due:
            return False
        self._seen, self._read_at = snapshot, time.monotonic()
        return True
