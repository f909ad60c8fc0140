"""Periodic MeterValues (Sample.Periodic) for every connector with a running transaction, and
the MeterValues a TriggerMessage asks for.

Samples are counted from each transaction's start, every MeterValueSampleInterval seconds
(errata 3.15), and stamped with that boundary, so they are spaced exactly by the interval
(OCTT TC_070). They carry the MeterValuesSampledData measurands (measurands.py) and are queued
as transaction messages in the same ordered queue as Start/Stop, so samples taken while the
CSMS is unreachable arrive later, in order (OCTT TC_036). At the same boundary the
StopTxnSampledData measurands are kept for StopTransaction.transactionData
(transaction_data.py).

The keys are read again every cycle (and a change wakes the loop), so a ChangeConfiguration of
the interval or of the measurands applies from the next boundary, without a restart; an
interval of 0 sends nothing. The boundary of the last sample is stored with it, in one database
transaction, so a restarted ocpp16 neither repeats nor skips one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from django.db import transaction
from ocpp.v16.enums import Action, ReadingContext

from bus import Bus, contract
from bus.messages import utcnow
from webapp.station.models import Transaction
from workers.ocpp16 import config_keys as keys
from workers.ocpp16 import measurands, payloads, transaction_data
from workers.ocpp16.config_keys import ConfigurationStore
from workers.ocpp16.measurands import SkippedValues
from workers.ocpp16.payloads import InvalidPayload, Payload
from workers.ocpp16.txqueue import TransactionQueue, db

log = logging.getLogger(__name__)

MAX_NAP_S = 1.0  # look for new transactions and changed keys at least this often
MIN_NAP_S = 0.05
SAME_BOUNDARY = timedelta(milliseconds=1)  # database round trips may shave microseconds
_TRIGGER_SKIPS = SkippedValues()


def latest_boundary(started_at: datetime, now: datetime, interval: timedelta) -> datetime | None:
    """The last boundary (start + k x interval, k >= 1) at or before `now`; None before the first."""
    count = math.floor((now - started_at) / interval)
    return started_at + count * interval if count >= 1 else None


async def checked(action: str, payload: Payload, where: str) -> Payload | None:
    """`payload` if the CSMS would accept it by schema; else None, with a log line."""
    try:
        await payloads.check(action, payload)
    except InvalidPayload as error:
        log.error("%s: %s not sent: %s", where, action, error)
        return None
    return payload


def _record_sample(queue: TransactionQueue, session_id: str, payload: Payload | None, boundary: datetime,
                   stop_entry: Payload | None, cap: int) -> bool:
    """Queue the sample, keep its transactionData entry and mark the boundary done, atomically;
    False when the transaction stopped meanwhile (nothing is kept)."""
    with transaction.atomic():
        running = queue.add_meter_values(session_id, payload, boundary)
        if running and stop_entry is not None:
            transaction_data.keep_sample(session_id, stop_entry, cap)
    return running


class MeterSampler:
    def __init__(self, bus: Bus, queue: TransactionQueue, config: ConfigurationStore,
                 on_queued: Callable[[], Awaitable[None]]) -> None:
        self._bus = bus
        self._queue = queue
        self._config = config
        self._on_queued = on_queued
        self._skips = SkippedValues()
        self._changed = asyncio.Event()
        config.listen(keys.METER_VALUE_SAMPLE_INTERVAL, lambda *_: self._changed.set())

    async def run(self) -> None:
        while True:
            self._changed.clear()
            interval_s = self._config.get(keys.METER_VALUE_SAMPLE_INTERVAL)
            nap_s = MAX_NAP_S
            if interval_s > 0:
                nap_s = await self._sample_due(timedelta(seconds=interval_s))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(MIN_NAP_S, nap_s))

    async def _sample_due(self, interval: timedelta) -> float:
        """Sample every transaction whose boundary has come; seconds until the next one."""
        next_due = utcnow() + timedelta(seconds=MAX_NAP_S)
        for tx in await db(self._queue.running):
            now = utcnow()
            boundary = latest_boundary(tx.started_at, now, interval)
            done = tx.last_sampled_at
            if boundary is not None and (done is None or boundary - done > SAME_BOUNDARY):
                await self._sample(tx, boundary)
            next_due = min(next_due, (boundary or tx.started_at) + interval)
        return (next_due - utcnow()).total_seconds()

    async def _sample(self, tx: Transaction, boundary: datetime) -> None:
        readings = await measurands.read(self._bus, tx.connector_id)
        where = f"connector {tx.connector_id} periodic MeterValues"
        values = measurands.sampled_values(self._config.get(keys.METER_VALUES_SAMPLED_DATA), readings,
                                           ReadingContext.sample_periodic, where=where, skips=self._skips)
        payload = None
        if values:
            entry = payloads.meter_value(boundary, values)
            payload = await checked(Action.meter_values,
                                    payloads.meter_values(tx.connector_id, tx.transaction_id, [entry]), where)
        stop_values = measurands.sampled_values(
            self._config.get(keys.STOP_TXN_SAMPLED_DATA), readings, ReadingContext.sample_periodic,
            where=f"connector {tx.connector_id} StopTxnSampledData", skips=self._skips)
        stop_entry = payloads.meter_value(boundary, stop_values) if stop_values else None
        cap = self._config.get(keys.STOP_TRANSACTION_MAX_METER_VALUES)
        running = await db(_record_sample, self._queue, tx.session_id, payload, boundary, stop_entry, cap)
        if running and payload is not None:
            await self._on_queued()


async def triggered_meter_values(bus: Bus, config: ConfigurationStore, connector_id: int) -> Payload | None:
    """MeterValues for TriggerMessage(MeterValues): the current MeterValuesSampledData values of
    connector N (0: the station meter), context Trigger (errata 3.46), with the transactionId
    running there if the CSMS gave one. None when there is nothing to report (logged)."""
    readings = await measurands.read(bus, connector_id)
    where = f"connector {connector_id} triggered MeterValues"
    values = measurands.sampled_values(config.get(keys.METER_VALUES_SAMPLED_DATA), readings,
                                       ReadingContext.trigger, where=where, skips=_TRIGGER_SKIPS)
    if not values:
        log.warning("%s: no value to report", where)
        return None
    transaction_id = None
    if connector_id > 0:
        (running,) = await bus.get_many([(contract.OCPP_TRANSACTION, {"connector_id": connector_id})])
        transaction_id = None if running.value is None else running.value.transaction_id
    payload = payloads.meter_values(connector_id, transaction_id, [payloads.meter_value(utcnow(), values)])
    return await checked(Action.meter_values, payload, where)
