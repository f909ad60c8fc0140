"""The frame log: every OCPP-J frame to and from the CSMS, kept in table OcppFrame so the
configurator can show what was said when a CSMS and the station disagree.

Why it is built like this: the receive loop must never wait for the database. `record()` only
appends (time, direction, text) to a bounded in-memory buffer; `run()` writes batches from a
thread of its own (not Django's shared sync thread, so a slow log write never delays the
transaction queue). When the database falls behind, the oldest buffered frames are dropped
and counted (`dropped`, logged), never the OCPP traffic itself.

A row holds the direction, message type, message id and action (for a CALLRESULT/CALLERROR:
the action of the CALL it answers, matched by id), and the text as sent or received, with the
AuthorizationKey of a ChangeConfiguration masked (wsconnect.redact_frame, the transport's one
rule for logging frames) and anything beyond MAX_LOGGED_CHARS cut, ending in CUT_MARKER.

Retention: the newest KEEP_ROWS rows stay; older ones are deleted in batches of
PRUNE_BATCH_ROWS after every PRUNE_EVERY_ROWS rows written, so no prune holds the database long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import DatabaseError, connections

from webapp.station.ocpp_models import OcppFrame
from workers.ocpp16.frames import MessageType
from workers.ocpp16.protocol import FrameChannel
from workers.ocpp16.wsconnect import redact_frame

log = logging.getLogger(__name__)

Direction = OcppFrame.Direction

MAX_LOGGED_CHARS = 10_000  # a whole GetConfiguration answer fits; a huge local list is cut
CUT_MARKER = "…[cut: {length} chars in all]"
BUFFER_ROWS = 2_000  # frames waiting for the database; beyond, the oldest are dropped (<= ~20 MB)
BATCH_ROWS = 500  # frames per database write
FLUSH_INTERVAL_S = 1.0  # a frame reaches the table within about this time
FINAL_FLUSH_S = 3.0  # at shutdown, time given to write what is buffered
# ~100 000 frames is about a week of a busy station (heartbeats, statuses, meter values every
# few seconds) in a few tens of MB: enough to look into an incident, bounded on a small disk.
KEEP_ROWS = 100_000
PRUNE_EVERY_ROWS = 1_000
PRUNE_BATCH_ROWS = 5_000
ANSWER_MEMORY = 1_000  # CALL ids remembered to name the action of their answer
ID_CHARS = OcppFrame._meta.get_field("unique_id").max_length
ACTION_CHARS = OcppFrame._meta.get_field("action").max_length
_MESSAGE_TYPES = frozenset(MessageType)
_decoder = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")  # JSON whitespace


@dataclass(frozen=True, slots=True)
class _Captured:
    at: datetime
    direction: str
    text: str  # at most MAX_LOGGED_CHARS
    length: int  # of the whole frame


def _skip_space(text: str, index: int) -> int:
    match = _SPACE.match(text, index)
    return index if match is None else match.end()


def _leading_values(text: str, count: int) -> list[Any]:
    """The first `count` elements of a JSON array, decoded without reading the rest (a frame
    may be cut, or huge): enough for the message type, id and action."""
    values: list[Any] = []
    index = _skip_space(text, 0)
    if not text.startswith("[", index):
        return values
    index += 1
    while len(values) < count:
        try:
            value, index = _decoder.raw_decode(text, _skip_space(text, index))
        except (ValueError, RecursionError):
            break
        values.append(value)
        index = _skip_space(text, index)
        if not text.startswith(",", index):
            break
        index += 1
    return values


class _Describer:
    """Turns captured frames into rows, in order (it remembers CALLs to name their answers)."""

    def __init__(self) -> None:
        self._calls: OrderedDict[tuple[str, str], str] = OrderedDict()

    def row(self, captured: _Captured) -> OcppFrame:
        head = _leading_values(captured.text, 3)
        kind = head[0] if head and type(head[0]) is int and head[0] in _MESSAGE_TYPES else None
        has_id = kind is not None and len(head) > 1 and isinstance(head[1], str)
        unique_id = head[1][:ID_CHARS] if has_id else ""
        action = ""
        if kind == MessageType.CALL and len(head) > 2 and isinstance(head[2], str):
            action = head[2][:ACTION_CHARS]
            self._remember(captured.direction, unique_id, action)
        elif kind is not None:
            asker = Direction.OUT if captured.direction == Direction.IN else Direction.IN
            action = self._calls.pop((asker, unique_id), "")
        text = redact_frame(captured.text)
        if captured.length > len(captured.text):
            text += CUT_MARKER.format(length=captured.length)
        return OcppFrame(at=captured.at, direction=captured.direction, message_type=kind,
                         unique_id=unique_id, action=action, frame=text)

    def _remember(self, direction: str, unique_id: str, action: str) -> None:
        self._calls[(direction, unique_id)] = action
        while len(self._calls) > ANSWER_MEMORY:
            self._calls.popitem(last=False)


def _prune(keep_rows: int) -> int:
    """Delete all but the newest `keep_rows` rows, in batches; returns how many went."""
    newest = OcppFrame.objects.order_by("-id").values_list("id", flat=True).first()
    if newest is None:
        return 0
    cutoff = newest - keep_rows  # ids up to here go
    deleted = 0
    while True:
        oldest = OcppFrame.objects.order_by("id").values_list("id", flat=True).first()
        if oldest is None or oldest > cutoff:
            return deleted
        count, _ = OcppFrame.objects.filter(id__lte=min(cutoff, oldest + PRUNE_BATCH_ROWS - 1)).delete()
        deleted += count


class FrameLog:
    """The frame log of the ocpp16 service: `wrap()` each connection's socket, `run()` always."""

    def __init__(self, keep_rows: int = KEEP_ROWS, buffer_rows: int = BUFFER_ROWS) -> None:
        self.keep_rows = keep_rows
        self.dropped = 0  # frames never written (buffer overflow or a failed write)
        self.written = 0
        self._buffer: deque[_Captured] = deque(maxlen=buffer_rows)
        self._describer = _Describer()
        self._wake = asyncio.Event()
        self._reported_dropped = 0
        self._since_prune = 0
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frame-log")

    def wrap(self, channel: FrameChannel) -> LoggedChannel:
        return LoggedChannel(channel, self)

    def record(self, direction: str, text: str) -> None:
        """Note a frame (cheap: called for every frame on the receive and send path)."""
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(_Captured(datetime.now(UTC), direction, text[:MAX_LOGGED_CHARS], len(text)))
        if len(self._buffer) >= BATCH_ROWS:
            self._wake.set()

    async def run(self) -> None:
        """Write buffered frames until cancelled; then write what is left (briefly)."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL_S)
                self._wake.clear()
                await self.flush()
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), FINAL_FLUSH_S)
            self._writer.submit(connections.close_all)
            self._writer.shutdown(wait=False)

    async def flush(self) -> None:
        """Write everything buffered now, batch by batch, on the log's own thread."""
        loop = asyncio.get_running_loop()
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(BATCH_ROWS, len(self._buffer)))]
            stored = await loop.run_in_executor(self._writer, self._store, batch)
            self.written += stored
            self.dropped += len(batch) - stored
        if self.dropped > self._reported_dropped:
            log.warning("frame log: %d frames not logged so far (the database is too slow)", self.dropped)
            self._reported_dropped = self.dropped

    def _store(self, batch: list[_Captured]) -> int:
        """Runs on the writer thread: describe, insert, prune now and then; returns rows written."""
        rows = [self._describer.row(captured) for captured in batch]
        try:
            OcppFrame.objects.bulk_create(rows)
        except DatabaseError as error:
            log.warning("frame log: %d frames not written: %s", len(rows), error)
            connections.close_all()  # a broken connection is opened afresh by the next write
            return 0
        self._since_prune += len(rows)
        if self._since_prune >= PRUNE_EVERY_ROWS:
            self._since_prune = 0
            try:
                _prune(self.keep_rows)
            except DatabaseError as error:
                log.warning("frame log: old frames not pruned (next time): %s", error)
                connections.close_all()
        return len(rows)


class LoggedChannel:
    """A FrameChannel that notes every frame in the frame log, as it goes to or comes from the wire."""

    def __init__(self, channel: FrameChannel, frame_log: FrameLog) -> None:
        self._channel = channel
        self._log = frame_log

    async def recv(self) -> str:
        frame = await self._channel.recv()
        self._log.record(Direction.IN, frame)
        return frame

    async def send(self, frame: str) -> None:
        self._log.record(Direction.OUT, frame)
        await self._channel.send(frame)
