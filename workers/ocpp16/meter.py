"""Periodic MeterValues (Sample.Periodic) for every connector with a running transaction.

Samples are counted from each transaction's start, every MeterValueSampleInterval seconds
(errata 3.15), and queued as transaction messages in the same ordered queue as Start/Stop, so
samples taken while the CSMS is unreachable arrive later, in order (OCTT TC_036). Values:
the meter's lifetime energy register (Wh), its power (W) and the EV's SoC (%, location EV)
when smartw knows it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from ocpp.v16.enums import Action

from bus import Bus, contract
from bus.messages import utcnow
from webapp.station.models import Transaction
from workers.ocpp16 import payloads
from workers.ocpp16.sessions import problem_with
from workers.ocpp16.txqueue import TransactionQueue, db

log = logging.getLogger(__name__)

MAX_NAP_S = 1.0  # look for new transactions at least this often
MIN_NAP_S = 0.05


def meter_name(connector_id: int) -> str:
    return f"connector{connector_id}"


class MeterSampler:
    def __init__(self, bus: Bus, queue: TransactionQueue, interval_s: float,
                 on_queued: Callable[[], Awaitable[None]]) -> None:
        if interval_s <= 0:
            raise ValueError("MeterSampler needs a positive interval; 0 means do not run it")
        self._bus = bus
        self._queue = queue
        self._interval = timedelta(seconds=interval_s)
        self._on_queued = on_queued
        self._last_index: dict[str, int] = {}  # session -> number of the last sample taken

    async def run(self) -> None:
        while True:
            now = utcnow()
            next_due = now + timedelta(seconds=MAX_NAP_S)
            running = await db(self._queue.running)
            for tx in running:
                index = math.floor((now - tx.started_at) / self._interval)
                if tx.session_id not in self._last_index:
                    self._last_index[tx.session_id] = self._index_of(tx.started_at, tx.last_sampled_at)
                if index >= 1 and self._last_index[tx.session_id] < index:
                    self._last_index[tx.session_id] = index
                    # Stamped on the boundary, so samples are spaced exactly by the interval
                    # (OCTT TC_070); the reading is the one at hand a few ms after it.
                    await self._sample(tx, tx.started_at + index * self._interval)
                next_due = min(next_due, tx.started_at + (index + 1) * self._interval)
            live = {tx.session_id for tx in running}
            self._last_index = {k: v for k, v in self._last_index.items() if k in live}
            await asyncio.sleep(max(MIN_NAP_S, (next_due - utcnow()).total_seconds()))

    def _index_of(self, started_at: datetime, sampled_at: datetime | None) -> int:
        """The number of the boundary `sampled_at` was (0: none yet), so samples a previous
        ocpp16 process already queued are not queued twice after a restart."""
        if sampled_at is None:
            return 0
        return round((sampled_at - started_at) / self._interval)

    async def _sample(self, tx: Transaction, at: datetime) -> None:
        reading = await self._bus.get(contract.METER, meter=meter_name(tx.connector_id))
        state = await self._bus.get(contract.CONNECTOR, connector_id=tx.connector_id)
        soc = state.soc if state is not None else None
        payload = payloads.periodic_meter_values(tx.connector_id, tx.transaction_id, at, reading, soc)
        if payload is None:
            log.warning("connector %s: no meter reading, periodic MeterValues skipped", tx.connector_id)
            return
        problem = await problem_with(Action.meter_values, payload)
        if problem is not None:
            log.error("connector %s: MeterValues not queued: %s", tx.connector_id, problem)
            return
        if await db(self._queue.add_meter_values, tx.session_id, payload, at):
            await self._on_queued()
