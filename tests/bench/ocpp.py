"""OCPP benchmark: `.venv/bin/python tests/bench/ocpp.py` (not part of pytest; 1-2 minutes).

Prints, measured in the same run on this machine, with everything in one process and one
event loop on localhost (a private redis-server and a migrated SQLite database set up by
tests/bench/control_env.py):
- the round trip of a raw websocket echo (a Heartbeat CALL's text sent, the same text back,
  both ends opened like ocpp16 opens its link) next to a Heartbeat through ocpp16's
  `CsmsConnection` (the library's call, schema checks both ways, the frame log) answered by the
  test CSMS (workers/sim/csms.py, the `ocpp` library's central-system side): p50 and p99;
- the replay of 10,000 transaction messages queued while offline (2,000 sessions of
  StartTransaction, three MeterValues and StopTransaction, queued through TransactionQueue as
  the session recorder does) by ocpp16's QueueSender once a connection opens: the total, the
  time per message next to the raw round trip, and what the frame log wrote meanwhile.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != here]

import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

from tests.bench.control_env import bench_process  # noqa: E402

ROUND_TRIPS = 2_000
SESSIONS = 2_000
METER_VALUES_PER_SESSION = 3
MESSAGES = SESSIONS * (2 + METER_VALUES_PER_SESSION)  # 10,000
CHARGE_POINT_ID = "BENCH-1"
POLL_S = 0.005  # how often the replay's end is checked
REPLAY_TIMEOUT_S = 600.0


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(pct * len(ordered)))]


@dataclass(frozen=True)
class Figures:
    raw_echo_s: list[float]
    heartbeat_s: list[float]
    replay_s: float
    frames_written: int
    frames_dropped: int


async def timed(count: int, round_trip: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await round_trip()
        samples.append(time.perf_counter() - started)
    return samples


async def raw_echo_round_trips() -> list[float]:
    from websockets.asyncio.server import ServerConnection, serve

    from workers.ocpp16.wsconnect import SUBPROTOCOL, TransportSettings, open_connection

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    frame = json.dumps([2, "0b1e8c4e-8d5e-4a0e-9a55-0f3a2b7c9d11", "Heartbeat", {}], separators=(",", ":"))
    async with serve(echo, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        ws = await open_connection(TransportSettings(f"ws://127.0.0.1:{port}", CHARGE_POINT_ID,
                                                     ping_interval_s=None))

        async def round_trip() -> None:
            await ws.send(frame)
            await ws.recv()

        samples = await timed(ROUND_TRIPS, round_trip)
        await ws.close()
    return samples


def queue_sessions_offline() -> None:
    """10,000 messages in the outbox, queued the way the session recorder and sampler do."""
    from django.db import transaction

    from bus.enums import StopReason
    from bus.messages import SessionStarted, SessionStopped
    from workers.ocpp16 import payloads
    from workers.ocpp16.txqueue import TransactionQueue

    queue = TransactionQueue(attempts=3, retry_interval_s=1.0)
    started_at = datetime.now(UTC) - timedelta(days=1)
    with transaction.atomic():
        for number in range(SESSIONS):
            session_id, at = f"bench-{number}", started_at + timedelta(seconds=10 * number)
            start = SessionStarted(session_id=session_id, connector_id=1, id_tag="BENCH", at=at,
                                   meter_start_wh=1_000 * number)
            queue.record_start(start, payloads.start_transaction(start), None)
            for sample in range(METER_VALUES_PER_SESSION):
                energy = {"value": str(1_000 * number + sample), "unit": "Wh",
                          "measurand": "Energy.Active.Import.Register", "context": "Sample.Periodic"}
                entry = payloads.meter_value(at + timedelta(seconds=sample + 1), [energy])
                queue.add_meter_values(session_id, payloads.meter_values(1, None, [entry]))
            stop = SessionStopped(session_id=session_id, connector_id=1, id_tag="BENCH",
                                  reason=StopReason.LOCAL, at=at + timedelta(seconds=9),
                                  meter_stop_wh=1_000 * number + 900)
            queue.record_stop(stop, payloads.stop_transaction(stop, None), None)


async def ocpp_figures(raw_echo_s: list[float]) -> Figures:
    from ocpp.v16 import call

    from bus import Bus
    from tests.ocpp16.wire_pair import station_context
    from workers.ocpp16.frame_log import FrameLog
    from workers.ocpp16.protocol import CsmsConnection
    from workers.ocpp16.sender import QueueSender
    from workers.ocpp16.txkeys import TransactionKeys
    from workers.ocpp16.txqueue import TransactionQueue, db
    from workers.ocpp16.wsconnect import OcppSocket, TransportSettings, open_connection
    from workers.sim.csms import Csms, CsmsBehaviour

    bus = Bus("ocpp16-bench")
    ctx = station_context(bus)
    frame_log = FrameLog()
    writing = asyncio.create_task(frame_log.run())

    async def connect(csms: Csms) -> tuple[CsmsConnection, asyncio.Task[None]]:
        ws = await open_connection(TransportSettings(csms.url, CHARGE_POINT_ID, ping_interval_s=None))
        connection = CsmsConnection(frame_log.wrap(OcppSocket(ws)), CHARGE_POINT_ID, ctx, lambda: 30.0)
        return connection, asyncio.create_task(connection.receive())

    async with Csms(port=0, behaviour=CsmsBehaviour(heartbeat_interval_s=3600)) as csms:
        connection, receiving = await connect(csms)
        heartbeat_s = await timed(ROUND_TRIPS, lambda: connection.call(call.Heartbeat()))
        receiving.cancel()

        await db(queue_sessions_offline)
        written_before = frame_log.written
        queue = TransactionQueue(attempts=3, retry_interval_s=1.0)

        async def nothing() -> None:
            return None

        sender = QueueSender(queue, TransactionKeys(bus), nothing, ctx.auth)
        connection, receiving = await connect(csms)  # the reconnect
        received_before = len(csms.received)  # checked cheaply: the CSMS's list grows to 10,000
        started = time.perf_counter()
        sending = asyncio.create_task(sender.run(connection))
        deadline = started + REPLAY_TIMEOUT_S
        while (len(csms.received) < received_before + MESSAGES or not csms.received[-1].answered) \
                and time.perf_counter() < deadline:
            await asyncio.sleep(POLL_S)
        while await db(queue.pending_count) and time.perf_counter() < deadline:  # the last one marked
            await asyncio.sleep(POLL_S)
        replay_s = time.perf_counter() - started
        for task in (sending, receiving):
            task.cancel()
        await asyncio.gather(sending, receiving, return_exceptions=True)
        left = await db(queue.pending_count)
        if left:
            raise RuntimeError(f"replay incomplete: {left} messages still queued")
    writing.cancel()
    await asyncio.gather(writing, return_exceptions=True)
    await bus.close()
    return Figures(raw_echo_s, heartbeat_s, replay_s, frame_log.written - written_before, frame_log.dropped)


def report(figures: Figures) -> list[str]:
    raw_p50 = percentile(figures.raw_echo_s, 0.5)
    heartbeat_p50 = percentile(figures.heartbeat_s, 0.5)
    per_message_s = figures.replay_s / MESSAGES
    lines = [f"Round trips, n={ROUND_TRIPS} each (one process, one event loop, localhost)",
             f"  {'':<58} {'p50 ms':>8} {'p99 ms':>8}"]
    for label, samples in (("raw websocket echo (a Heartbeat CALL's text)", figures.raw_echo_s),
                           ("Heartbeat via CsmsConnection, answered by the test CSMS", figures.heartbeat_s)):
        p50_ms, p99_ms = percentile(samples, 0.5) * 1e3, percentile(samples, 0.99) * 1e3
        lines.append(f"  {label:<58} {p50_ms:>8.3f} {p99_ms:>8.3f}")
    lines += [
        "",
        f"Replay of {MESSAGES:,} queued transaction messages after reconnect "
        f"({SESSIONS:,} sessions: Start, {METER_VALUES_PER_SESSION} MeterValues, Stop)",
        f"  total            {figures.replay_s:8.2f} s",
        f"  per message      {per_message_s * 1e3:8.3f} ms  = {per_message_s / raw_p50:.1f} x the raw echo "
        f"p50, {per_message_s / heartbeat_p50:.1f} x the Heartbeat p50",
        f"  frame log        {figures.frames_written:,} frames written, {figures.frames_dropped:,} dropped",
    ]
    return lines


def main() -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-ocpp-") as folder:
        logging.basicConfig(filename=Path(folder) / "bench.log", level=logging.WARNING)
        with bench_process(Path(folder)):
            raw_echo_s = asyncio.run(raw_echo_round_trips())
            figures = asyncio.run(ocpp_figures(raw_echo_s))
        logging.shutdown()
    print("\n".join(report(figures)))
    print(f"\n(took {time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
