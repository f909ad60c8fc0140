"""The OCPP_TRANSACTION bus key per connector: which OCPP transaction runs there.

Written when a session starts (transactionId unknown), updated when StartTransaction.conf
brings the id and the idTag's group (its parentIdTag, read from the stored answer, so a restart
finds it too), deleted when the session stops, and rebuilt from the database when ocpp16
starts. One lock orders these writes, and each decision re-reads the database inside it, so a
conf arriving just as the session stops cannot leave a stale key behind. The session's
OCPP_DEAUTHORIZED key (auth/invalid_id.py) goes with it.
"""

from __future__ import annotations

import asyncio

from ocpp.v16.enums import Action

from bus import Bus, contract
from bus.messages import OcppTransaction
from webapp.station.models import OutboxMessage, Transaction
from workers.ocpp16.txqueue import db

State = OutboxMessage.State
ID_TAG_MAX_CHARS = 20


def _with_parent(tx: Transaction) -> OcppTransaction:
    """The key's value, the parentIdTag taken from the delivered StartTransaction's answer."""
    answer = OutboxMessage.objects.filter(session_id=tx.session_id, action=Action.start_transaction,
                                          state=State.DELIVERED).values_list("response", flat=True).first()
    info = (answer or {}).get("id_tag_info") or {}
    parent = info.get("parent_id_tag") if isinstance(info, dict) else None
    usable = isinstance(parent, str) and 0 < len(parent) <= ID_TAG_MAX_CHARS  # the schema's CiString20
    return OcppTransaction(connector_id=tx.connector_id, session_id=tx.session_id,
                           transaction_id=tx.transaction_id, parent_id_tag=parent if usable else None)


def _running(session_id: str) -> OcppTransaction | None:
    tx = Transaction.objects.filter(session_id=session_id, stopped_at__isnull=True).first()
    return None if tx is None else _with_parent(tx)


def _all_running() -> list[OcppTransaction]:
    return [_with_parent(tx) for tx in Transaction.objects.filter(stopped_at__isnull=True)]


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
            refused = await self._bus.get(contract.OCPP_DEAUTHORIZED, connector_id=connector_id)
            if refused is not None and refused.session_id == session_id:
                await self._bus.delete(contract.OCPP_DEAUTHORIZED, connector_id=connector_id)

    async def restore(self, connector_ids: tuple[int, ...]) -> None:
        """At start-up: keys for the transactions the database says still run, none for others."""
        async with self._lock:
            running = {tx.connector_id: tx for tx in await db(_all_running)}
            for connector_id in connector_ids:
                if connector_id in running:
                    await self._write(running[connector_id])
                else:
                    await self._bus.delete(contract.OCPP_TRANSACTION, connector_id=connector_id)
                    await self._bus.delete(contract.OCPP_DEAUTHORIZED, connector_id=connector_id)

    async def _write(self, tx: OcppTransaction) -> None:
        await self._bus.set(contract.OCPP_TRANSACTION, tx, connector_id=tx.connector_id)
