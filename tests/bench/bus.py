"""Bus benchmark: `.venv/bin/python tests/bench/bus.py` (not part of pytest; < 60 s).

Starts its own redis-server on a free port and prints, measured in the same run so the
numbers compare on this machine:
- request/reply latency through `Bus.request` (a server in another process answering
  contract.START) next to a raw redis-py round trip (PING, and SET+GET);
- event throughput of `Bus.publish` (awaited one by one, and 100 in flight) next to raw
  pipelined XADD of the same payload.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if __name__ == "__main__":
    # Run as a script, this file's folder comes first on sys.path and `bus.py` would shadow
    # the `bus` package: put the repository first instead.
    here = Path(__file__).resolve().parent
    sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != here]

import asyncio  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402

import redis.asyncio as aioredis  # noqa: E402

from bus import Bus, contract  # noqa: E402
from bus.client import FIELD  # noqa: E402
from bus.enums import ConnectorStatus, Standard, StartSource  # noqa: E402
from bus.envelope import Envelope  # noqa: E402
from bus.messages import CommandResult, ConnectorState, StartRequest  # noqa: E402
from bus.names import Names  # noqa: E402
from workers.common.redis_server import free_port, start_redis, stop_redis  # noqa: E402

PREFIX = "bench"
PHASE_S = 5.0  # each measurement stops after this long (or its count)
REQUESTS = 5_000
ROUND_TRIPS = 5_000
EVENTS = 50_000
BATCH = 100  # raw XADDs per pipeline, and Bus.publish calls in flight


async def serve(url: str) -> None:
    """The reply side, run in its own process (`bus.py --serve URL`)."""
    server = Bus("smartw", url, Names(PREFIX))
    stop = asyncio.Event()

    async def handler(request: StartRequest) -> CommandResult:
        return CommandResult(accepted=True, reason="bench")

    await server.serve(contract.START, handler, stop=stop)


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def timed_calls(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    """Latencies (ms) of `call` awaited one after another, for `count` calls or PHASE_S."""
    samples: list[float] = []
    deadline = time.perf_counter() + PHASE_S
    while len(samples) < count and time.perf_counter() < deadline:
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def rate(batch: Callable[[], Awaitable[object]], per_batch: int, count: int) -> float:
    """Items per second of `batch` (which handles `per_batch` items), for `count` or PHASE_S."""
    done, started = 0, time.perf_counter()
    while done < count and time.perf_counter() - started < PHASE_S:
        await batch()
        done += per_batch
    return done / (time.perf_counter() - started)


async def wait_for_server(client: Bus) -> None:
    stream = client.names.command(contract.START.name)
    deadline = time.monotonic() + 15
    while not (await client.redis.exists(stream) and await client.redis.xinfo_groups(stream)):
        if time.monotonic() > deadline:
            raise RuntimeError("the reply server did not start")
        await asyncio.sleep(0.05)


def latency_line(name: str, samples: list[float]) -> str:
    return (f"  {name:<34} n={len(samples):>6}  p50 {percentile(samples, 50):7.3f} ms  "
            f"p99 {percentile(samples, 99):7.3f} ms  mean {statistics.fmean(samples):7.3f} ms")


async def request_reply(client: Bus, raw: aioredis.Redis) -> list[str]:
    request = StartRequest(connector_id=1, source=StartSource.HMI)
    key = client.names.key(contract.STATION.format())  # any key: this Redis is the bench's own

    async def set_get() -> None:
        await raw.set(key, "x")
        await raw.get(key)

    await timed_calls(lambda: client.request(contract.START, request), 200)  # warm-up
    bus_rr = await timed_calls(lambda: client.request(contract.START, request), REQUESTS)
    ping = await timed_calls(raw.ping, ROUND_TRIPS)
    pair = await timed_calls(set_get, ROUND_TRIPS)
    return ["request/reply (one caller, server in another process):",
            latency_line("Bus.request -> reply", bus_rr),
            latency_line("raw redis-py PING", ping),
            latency_line("raw redis-py SET + GET", pair)]


async def events(client: Bus, raw: aioredis.Redis) -> list[str]:
    state = ConnectorState(connector_id=1, standard=Standard.CCS, status=ConnectorStatus.CHARGING,
                           power_w=50_000, soc=42)
    spec = contract.CONNECTOR_CHANGES
    stream = client.names.stream(spec.name)
    entry = {FIELD: Envelope(origin="bench", data=spec.adapter.dump_python(state, mode="json"))
             .model_dump_json()}

    async def one() -> None:
        await client.publish(spec, state)

    async def in_flight() -> None:
        await asyncio.gather(*(client.publish(spec, state) for _ in range(BATCH)))

    async def pipelined() -> None:
        async with raw.pipeline(transaction=False) as pipe:
            for _ in range(BATCH):
                pipe.xadd(stream, entry, maxlen=spec.maxlen, approximate=True)
            await pipe.execute()

    sequential = await rate(one, 1, EVENTS)
    concurrent = await rate(in_flight, BATCH, EVENTS)
    raw_rate = await rate(pipelined, BATCH, EVENTS)
    return ["event throughput (ConnectorState, one publisher):",
            f"  {'Bus.publish, awaited one by one':<34} {sequential:>10,.0f} events/s",
            f"  {f'Bus.publish, {BATCH} in flight':<34} {concurrent:>10,.0f} events/s",
            f"  {f'raw XADD, pipelined by {BATCH}':<34} {raw_rate:>10,.0f} events/s"]


async def bench(url: str) -> None:
    server = subprocess.Popen([sys.executable, __file__, "--serve", url])
    client = Bus("bench", url, Names(PREFIX))
    raw = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        await wait_for_server(client)
        lines = await request_reply(client, raw)
        lines += [""] + await events(client, raw)
    finally:
        server.terminate()
        server.wait(timeout=10)
        await client.close()
        await raw.aclose()
    print("\n".join(lines))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        asyncio.run(serve(sys.argv[2]))
        return
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
        port = free_port()
        redis_process = start_redis(port, Path(folder))
        try:
            print(f"bus benchmark: private redis-server on 127.0.0.1:{port}, "
                  f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
            asyncio.run(bench(f"redis://127.0.0.1:{port}/0"))
        finally:
            stop_redis(redis_process)
    print(f"\n(took {time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
