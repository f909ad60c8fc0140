"""Each charging session's timeline (SessionEvent rows), recorded without slowing the cycle.

The control cycle must never wait for the database (a locked SQLite file can hold a write
for the whole busy timeout), so recording is split in two:
- `SessionTimeline` decides what is worth a row: it compares what the cycle already computed
  (the connector's published snapshot, its offered power, its controller's view) with what it
  recorded last, and queues an entry in memory. It never awaits.
- `TimelineWriter` writes the queued entries in order from one background task, on a thread
  of its own (so a slow write does not hold the thread the async ORM shares with the session
  rows either). A database error that may pass (locked, connection lost) is retried with
  backoff, the first failure logged at ERROR and the rest at DEBUG until it recovers; the
  queue is bounded, and entries that do not fit are dropped, counted and logged.

A session's entries are queued only between its `started` and its `stopped`, so every entry
refers to a row that exists, and `stopped` is always its last.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, connections

from bus.enums import ConnectorErrorCode, ConnectorStatus
from bus.messages import ConnectorState, utcnow
from webapp.station.models import ChargingSession, SessionEvent
from workers.smartw.connector import ConnectorRuntime

log = logging.getLogger(__name__)

Kind = SessionEvent.Kind

QUEUE_CAPACITY = 2000  # entries waiting for the database; a few hours of a busy station
BATCH_MAX = 200  # entries written in one INSERT
RETRY_FIRST_S = 0.5  # backoff after a failed write, doubling up to RETRY_MAX_S
RETRY_MAX_S = 10.0
LIMIT_STEP_MIN_W = 1000.0  # a change of the power offered is recorded above max(1 kW, 5 %)
LIMIT_STEP_SHARE = 0.05
SOC_STEP_PERCENT = 10  # SoC milestones
TRANSIENT_ERRORS = (OperationalError, InterfaceError)  # the database may answer again later

# One thread writes every timeline row, whichever SessionTimeline queued it (smartw builds a
# new one when its run restarts after a Redis outage).
_WRITER_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smartw-timeline")


@dataclass(frozen=True)
class TimelineEntry:
    session_id: str  # ChargingSession.session_id (smartw's id, not the row's pk)
    at: datetime
    kind: Kind
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


class TimelineWriter:
    """A bounded in-memory queue written to SessionEvent in order by one background task."""

    def __init__(self, capacity: int = QUEUE_CAPACITY, retry_first_s: float = RETRY_FIRST_S,
                 retry_max_s: float = RETRY_MAX_S) -> None:
        self.capacity = capacity
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.dropped = 0  # entries lost since start: queue full, or refused by the database
        self._queue: deque[TimelineEntry] = deque()
        self._task: asyncio.Task[None] | None = None
        self._drops_unreported = 0
        self._row_pks: dict[str, int] = {}  # session_id -> row pk (running sessions; writer thread only)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def put(self, entry: TimelineEntry) -> None:
        """Queue an entry (never waits); starts the writer task if it is not running."""
        if len(self._queue) >= self.capacity:
            self._drop(1, "the queue is full")
            return
        self._queue.append(entry)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="smartw.timeline")

    async def aclose(self, timeout_s: float) -> None:
        """Write what is queued (smartw stopping), giving up after `timeout_s`."""
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
            except TimeoutError:
                task.cancel()
                log.error("session timeline: %d event(s) not written before stopping", len(self._queue))
        await asyncio.get_running_loop().run_in_executor(_WRITER_THREAD, connections.close_all)

    async def _drain(self) -> None:
        delay = self.retry_first_s
        failing = False
        while self._queue:
            batch = list(islice(self._queue, BATCH_MAX))
            try:
                written = await sync_to_async(self._insert, thread_sensitive=False,
                                              executor=_WRITER_THREAD)(batch)
                if written < len(batch):
                    self._drop(len(batch) - written, "their session has no row")
            except TRANSIENT_ERRORS as error:
                (log.debug if failing else log.error)(
                    "session timeline: cannot write %d event(s), retrying in %.1f s: %s",
                    len(self._queue), delay, error)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            except Exception:
                log.exception("session timeline: the database refused %d event(s)", len(batch))
                self._drop(len(batch), "the database refused them")
            if failing:
                log.info("session timeline: writing again")
                failing, delay = False, self.retry_first_s
            for _ in batch:
                self._queue.popleft()
            self._report_drops()

    def _insert(self, batch: list[TimelineEntry]) -> int:
        """Runs on the writer thread: one INSERT for the batch (all or nothing); returns how
        many entries were written (an entry whose session has no row cannot be)."""
        try:
            pks = self._session_pks({entry.session_id for entry in batch})
            rows = [SessionEvent(session_id=pks[entry.session_id], at=entry.at, kind=entry.kind,
                                 detail=entry.detail[:200], data=entry.data)
                    for entry in batch if entry.session_id in pks]
            SessionEvent.objects.bulk_create(rows)
        except TRANSIENT_ERRORS:
            connections["default"].close()  # a broken connection is opened afresh on the retry
            raise
        for entry in batch:
            if entry.kind == Kind.STOPPED:
                self._row_pks.pop(entry.session_id, None)
        return len(rows)

    def _session_pks(self, session_ids: set[str]) -> dict[str, int]:
        missing = session_ids - self._row_pks.keys()
        if missing:
            found = ChargingSession.objects.filter(session_id__in=missing).values_list("session_id", "pk")
            self._row_pks.update(found)
        return self._row_pks

    def _drop(self, count: int, why: str) -> None:
        if not self._drops_unreported:
            log.warning("session timeline: dropping events: %s", why)
        self.dropped += count
        self._drops_unreported += count

    def _report_drops(self) -> None:
        if self._drops_unreported:
            log.warning("session timeline: %d event(s) dropped (%d since start)",
                        self._drops_unreported, self.dropped)
            self._drops_unreported = 0


@dataclass
class _Seen:
    """What was last recorded for one connector's running session."""

    session_id: str
    status: ConnectorStatus | None = None
    fault: tuple[str, str, int | None] | None = None  # OCPP errorCode, info key, vendor code
    offered_w: float = 0.0
    ev: tuple[str, str] | None = None  # EV state letter, session phase
    soc_step: int | None = None


class SessionTimeline:
    """Decides what goes into the timeline; called from smartw's cycle and session control."""

    def __init__(self, writer: TimelineWriter | None = None) -> None:
        self.writer = writer or TimelineWriter()
        self._open: set[str] = set()  # sessions between their started and stopped entries
        self._seen: dict[int, _Seen] = {}  # connector id -> last recorded

    def started(self, row: ChargingSession) -> None:
        self._open.add(row.session_id)
        self.writer.put(TimelineEntry(
            row.session_id, row.started_at, Kind.STARTED,
            f"id tag {row.id_tag}, meter {row.meter_start_wh:.0f} Wh",
            {"id_tag": row.id_tag, "standard": row.standard, "meter_start_wh": row.meter_start_wh}))

    def stopped(self, row: ChargingSession) -> None:
        self._open.discard(row.session_id)
        # Stamped now, not at row.stopped_at: what the cycle queued while the row was being
        # closed must still sort before the session's last entry.
        self.writer.put(TimelineEntry(
            row.session_id, utcnow(), Kind.STOPPED,
            f"{row.stop_reason}, {row.energy_wh:.0f} Wh",
            {"reason": row.stop_reason, "stop_id_tag": row.stop_id_tag, "meter_stop_wh": row.meter_stop_wh,
             "energy_wh": row.energy_wh, "peak_power_w": row.peak_power_w}))

    async def aclose(self, timeout_s: float) -> None:
        """Write what is queued before smartw exits (the sessions it ended on the way out)."""
        await self.writer.aclose(timeout_s)

    def observe(self, connector: ConnectorRuntime, state: ConnectorState) -> None:
        """Compare one cycle's view of a connector with what was recorded; queue the changes."""
        session_id = state.session_id
        if session_id is None or session_id not in self._open:
            self._seen.pop(connector.id, None)
            return
        seen = self._seen.get(connector.id)
        if seen is None or seen.session_id != session_id:
            seen = self._seen[connector.id] = _Seen(session_id)
        at = utcnow()
        self._status(seen, state, at)
        self._fault(seen, connector, state, at)
        self._limit(seen, connector.allocated_w, at)
        self._ev(seen, connector, at)

    def _put(self, seen: _Seen, at: datetime, kind: Kind, detail: str, data: dict[str, Any]) -> None:
        self.writer.put(TimelineEntry(seen.session_id, at, kind, detail, data))

    def _status(self, seen: _Seen, state: ConnectorState, at: datetime) -> None:
        if state.status is seen.status:
            return
        seen.status = state.status
        self._put(seen, at, Kind.STATUS, f"{state.status}" + (f" ({state.info})" if state.info else ""),
                  {"status": str(state.status), "info": state.info})

    def _fault(self, seen: _Seen, connector: ConnectorRuntime, state: ConnectorState, at: datetime) -> None:
        controller = connector.controller
        vendor_code = controller.error_code if controller is not None and controller.error_code else None
        faulted = state.error_code is not ConnectorErrorCode.NO_ERROR or vendor_code is not None
        fault = (str(state.error_code), state.info, vendor_code) if faulted else None
        if fault == seen.fault:
            return
        previous, seen.fault = seen.fault, fault
        if fault is None:
            assert previous is not None
            self._put(seen, at, Kind.FAULT, f"cleared: {_describe_fault(previous)}",
                      {"raised": False, **_fault_data(previous)})
            return
        errors = [flag.name for flag in controller.errors] if controller is not None else []
        self._put(seen, at, Kind.FAULT, f"raised: {_describe_fault(fault)}",
                  {"raised": True, **_fault_data(fault), "controller_errors": errors})

    def _limit(self, seen: _Seen, offered_w: float, at: datetime) -> None:
        previous = seen.offered_w
        if abs(offered_w - previous) <= max(LIMIT_STEP_MIN_W, LIMIT_STEP_SHARE * previous):
            return
        seen.offered_w = offered_w
        self._put(seen, at, Kind.LIMIT, f"{offered_w / 1000:.1f} kW offered (was {previous / 1000:.1f})",
                  {"offered_w": offered_w, "previous_w": previous})

    def _ev(self, seen: _Seen, connector: ConnectorRuntime, at: datetime) -> None:
        controller = connector.controller
        if controller is None:  # controller lost: the fault entry says so
            return
        ev = (str(controller.ev_state), str(controller.phase))
        if ev != seen.ev:
            seen.ev = ev
            self._put(seen, at, Kind.EV, f"EV state {ev[0]}, phase {ev[1]}",
                      {"ev_state": ev[0], "phase": ev[1], "soc": controller.soc})
        if controller.soc is None:
            return
        step = int(controller.soc // SOC_STEP_PERCENT)
        if seen.soc_step is not None and step != seen.soc_step:
            self._put(seen, at, Kind.EV, f"SoC {step * SOC_STEP_PERCENT} %",
                      {"soc": controller.soc, "milestone": step * SOC_STEP_PERCENT})
        seen.soc_step = step


def _describe_fault(fault: tuple[str, str, int | None]) -> str:
    error_code, info, vendor_code = fault
    vendor = f", vendor code {vendor_code}" if vendor_code is not None else ""
    return f"{error_code}" + (f" ({info})" if info else "") + vendor


def _fault_data(fault: tuple[str, str, int | None]) -> dict[str, Any]:
    error_code, info, vendor_code = fault
    return {"error_code": error_code, "info": info, "vendor_error_code": vendor_code}
