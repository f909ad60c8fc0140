"""The OCPP_TRANSACTION bus key per connector: which OCPP transaction runs there.

Written when a session starts (transactionId unknown), updated when StartTransaction.conf
brings the id, deleted when the session stops, and rebuilt from the database when ocpp16
starts. One lock orders these writes, and each decision re-reads the database inside it, so a
conf arriving just as the session stops cannot leave a stale key behind.
"""

from __future__ import annotations

import asyncio

from bus import Bus, contract
from bus.messages import OcppTransaction
from webapp.station.models import Transaction
from workers.ocpp16.txqueue import db


def _running(session_id: str) -> Transaction | None:
    return Transaction.objects.filter(session_id=session_id, stopped_at__isnull=True).first()


def _all_running() -> list[Transaction]:
    return list(Transaction.objects.filter(stopped_at__isnull=True))


class TransactionKeys:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._lock = asyncio.Lock()

    async def refresh(self, session_id: str) -> None:
        """Write the key for a session that still runs (started, or its id became known)."""
        async with self._lock:
            tx = await db(_running, session_id)
            if tx is not None:
                await self._write(tx)

    async def stopped(self, connector_id: int, session_id: str) -> None:
        async with self._lock:
            current = await self._bus.get(contract.OCPP_TRANSACTION, connector_id=connector_id)
            if current is not None and current.session_id == session_id:
                await self._bus.delete(contract.OCPP_TRANSACTION, connector_id=connector_id)

    async def restore(self, connector_ids: tuple[int, ...]) -> None:
        """At start-up: keys for the transactions the database says still run, none for others."""
        async with self._lock:
            running = {tx.connector_id: tx for tx in await db(_all_running)}
            for connector_id in connector_ids:
                if connector_id in running:
                    await self._write(running[connector_id])
                else:
                    await self._bus.delete(contract.OCPP_TRANSACTION, connector_id=connector_id)

    async def _write(self, tx: Transaction) -> None:
        await self._bus.set(contract.OCPP_TRANSACTION,
                            OcppTransaction(connector_id=tx.connector_id, session_id=tx.session_id,
                                            transaction_id=tx.transaction_id),
                            connector_id=tx.connector_id)
