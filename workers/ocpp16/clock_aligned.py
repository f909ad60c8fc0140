"""Clock-aligned MeterValues (Sample.Clock; OCPP 1.6 §3.16.1, ClockAlignedDataInterval).

Boundaries are counted from midnight UTC (00:00, +interval, ... and again from the next
midnight when the interval does not divide a day); each value is stamped with its boundary
exactly, e.g. `12:15:00.000Z` (OCTT TC_071, EVerest/libocpp #445), and carries the
MeterValuesAlignedData measurands (measurands.py). At each boundary:

- a connector with a running transaction: MeterValues with its transactionId, queued as a
  transaction message (ordered with Start/Stop, kept through outages and restarts), and its
  StopTxnAlignedData values kept for StopTransaction.transactionData (transaction_data.py);
- a connector without one, and connector 0 (the station meter, if there is one): MeterValues
  without transactionId. These are not transaction-related (§4.7: only those must be queued),
  so they go over the second lane only while the CSMS link is Accepted; while offline they are
  not kept (logged), because a day offline would crowd that lane with past values.

Restart-safe: the last boundary done is stored (OcppState `clock_aligned:last`) in the same
database transaction as the queued messages, so no boundary is sent twice. While ocpp16 runs no
boundary is skipped (it sleeps to each one); one that passed while it was not running is sampled
only if it is at most `LATE_S` (at most half an interval) old, because the meter no longer shows
an older moment. The keys are read again at each boundary and a change of the interval wakes the
loop, so ChangeConfiguration applies without a restart; an interval of 0 sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from ocpp.v16.enums import Action, ReadingContext

from bus import Bus
from bus.messages import utcnow
from webapp.station.models import OcppState, Transaction
from workers.ocpp16 import config_keys as keys
from workers.ocpp16 import measurands, payloads, transaction_data
from workers.ocpp16.config_keys import ConfigurationStore
from workers.ocpp16.measurands import SkippedValues
from workers.ocpp16.meter import SAME_BOUNDARY, checked
from workers.ocpp16.notices import Notices
from workers.ocpp16.payloads import Payload
from workers.ocpp16.persisted import read_state
from workers.ocpp16.txqueue import TransactionQueue, db

log = logging.getLogger(__name__)

STATE_NAME = "clock_aligned:last"
LATE_S = 2.0  # a boundary missed while ocpp16 was down is still sampled up to this late
MAX_NAP_S = 1.0  # re-read the interval at least this often
MIN_NAP_S = 0.005
DAY = timedelta(days=1)


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def latest_boundary(now: datetime, interval: timedelta) -> datetime:
    """The last boundary (midnight UTC + k x interval) at or before `now` (a UTC time)."""
    midnight = _midnight(now)
    return midnight + math.floor((now - midnight) / interval) * interval


def next_boundary(now: datetime, interval: timedelta) -> datetime:
    """The first boundary after `now`; the next midnight starts the count again."""
    return min(latest_boundary(now, interval) + interval, _midnight(now) + DAY)


@dataclass(frozen=True)
class _InTransaction:
    session_id: str
    payload: Payload | None  # MeterValuesAlignedData values
    stop_entry: Payload | None  # StopTxnAlignedData values


def _record_boundary(queue: TransactionQueue, boundary: datetime, samples: list[_InTransaction],
                     cap: int) -> bool:
    """Queue the transactions' samples, keep their transactionData entries and mark the
    boundary done, in one database transaction; True if a message was queued."""
    queued = False
    with transaction.atomic():
        for sample in samples:
            running = queue.add_meter_values(sample.session_id, sample.payload)
            queued |= running and sample.payload is not None
            if running and sample.stop_entry is not None:
                transaction_data.keep_sample(sample.session_id, sample.stop_entry, cap)
        OcppState.objects.update_or_create(name=STATE_NAME, defaults={"value": payloads.ocpp_time(boundary)})
    return queued


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        log.error("stored %s %r is not a time; ignored", STATE_NAME, text)
        return None


class ClockAlignedSampler:
    def __init__(self, bus: Bus, queue: TransactionQueue, config: ConfigurationStore, notices: Notices,
                 connector_ids: tuple[int, ...], is_accepted: Callable[[], bool],
                 on_queued: Callable[[], Awaitable[None]]) -> None:
        self._bus = bus
        self._queue = queue
        self._config = config
        self._notices = notices
        self._connector_ids = connector_ids
        self._is_accepted = is_accepted
        self._on_queued = on_queued
        self._skips = SkippedValues()
        self._changed = asyncio.Event()
        config.listen(keys.CLOCK_ALIGNED_DATA_INTERVAL, lambda *_: self._changed.set())

    async def run(self) -> None:
        started = utcnow()
        done = _parse_time(await read_state(STATE_NAME))
        while True:
            self._changed.clear()
            interval_s = self._config.get(keys.CLOCK_ALIGNED_DATA_INTERVAL)
            nap_s = MAX_NAP_S
            if interval_s > 0:
                interval = timedelta(seconds=interval_s)
                due = latest_boundary(utcnow(), interval)
                if done is None or due - done > SAME_BOUNDARY:
                    if started - due > timedelta(seconds=min(LATE_S, interval_s / 2)):
                        log.info("clock-aligned boundary %s passed before ocpp16 ran; not sampled",
                                 payloads.ocpp_time(due))
                    else:
                        await self._sample(due)
                    done = due
                nap_s = min(nap_s, (next_boundary(utcnow(), interval) - utcnow()).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(MIN_NAP_S, nap_s))

    async def _sample(self, boundary: datetime) -> None:
        running = {tx.connector_id: tx for tx in await db(self._queue.running) if tx.started_at <= boundary}
        in_transaction: list[_InTransaction] = []
        outside: list[Payload] = []
        for connector_id in (0, *self._connector_ids):
            tx = running.get(connector_id)
            sample = await self._connector_sample(connector_id, tx, boundary)
            if tx is not None:
                in_transaction.append(sample)
            elif sample.payload is not None:
                outside.append(sample.payload)
        cap = self._config.get(keys.STOP_TRANSACTION_MAX_METER_VALUES)
        if await db(_record_boundary, self._queue, boundary, in_transaction, cap):
            await self._on_queued()
        self._send_outside(outside, boundary)

    async def _connector_sample(self, connector_id: int, tx: Transaction | None,
                                boundary: datetime) -> _InTransaction:
        readings = await measurands.read(self._bus, connector_id)
        where = f"connector {connector_id} clock-aligned MeterValues"
        values = measurands.sampled_values(self._config.get(keys.METER_VALUES_ALIGNED_DATA), readings,
                                           ReadingContext.sample_clock, where=where, skips=self._skips)
        payload = None
        if values:
            transaction_id = None if tx is None else tx.transaction_id
            payload = await checked(Action.meter_values, payloads.meter_values(
                connector_id, transaction_id, [payloads.meter_value(boundary, values)]), where)
        if tx is None:
            return _InTransaction("", payload, None)
        stop_values = measurands.sampled_values(
            self._config.get(keys.STOP_TXN_ALIGNED_DATA), readings, ReadingContext.sample_clock,
            where=f"connector {connector_id} StopTxnAlignedData", skips=self._skips)
        stop_entry = payloads.meter_value(boundary, stop_values) if stop_values else None
        return _InTransaction(tx.session_id, payload, stop_entry)

    def _send_outside(self, outside: list[Payload], boundary: datetime) -> None:
        if not outside:
            return
        if not self._is_accepted():
            log.debug("clock-aligned values of %s outside transactions not sent: the CSMS link is down",
                      payloads.ocpp_time(boundary))
            return
        for payload in outside:
            self._notices.send_soon(payloads.to_call(Action.meter_values, payload))
