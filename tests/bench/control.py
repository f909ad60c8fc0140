"""Control benchmark: `.venv/bin/python tests/bench/control.py` (not part of pytest; about 70 s).

Prints, measured in the same run:
- the CPU time (`time.process_time`) of one power allocation at 16 connectors x 32 DC power
  modules (workers/smartw/power_allocation.py: minimums, module matrix, dwell, measured
  consumption; p50/p99 over many cycles of a changing station) next to the skeleton's
  equal-share water-filling (tests/bench/equal_share_baseline.py `allocate`) on the same connectors,
  which shares only the station limit and knows no modules;
- on the simulated station of ops/station.sim.toml, run in this one process with smartw,
  counters, a private redis-server and a SQLite database (tests/bench/control_rig.py), the
  latency from e-stop to every contactor and link coil off, next to the IO poll period and a
  raw Modbus TCP read of the IO module, and from a new EV demand to a new current setpoint at
  every power module of the connector, next to smartw's cycle, the controller's poll period
  and one CAN round trip through the slcan pty (tests/bench/control_latency.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != here]

import asyncio  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

from bus.enums import Standard  # noqa: E402
from tests.bench.control_env import bench_process  # noqa: E402
from tests.bench.equal_share_baseline import PowerRequest, allocate  # noqa: E402
from workers.smartw.power_allocation import (  # noqa: E402
    AllocationInput,
    AllocationSettings,
    ConnectorInput,
    ModuleInput,
    StationInput,
    allocate_power,
)

CONNECTORS = 16
MODULES = 32
CYCLES = 5000
CYCLE_S = 0.25
ESTOP_PRESSES = 40
DEMAND_CHANGES = 30


def station() -> tuple[StationInput, list[ConnectorInput], list[ModuleInput]]:
    """12 DC connectors, each reaching 8 of the 32 modules (overlapping blocks), and 4 AC."""
    names = [f"pm{i}" for i in range(1, MODULES + 1)]
    matrix = {cid: frozenset(names[((cid - 1) * MODULES // 12 + offset) % MODULES] for offset in range(8))
              for cid in range(1, 13)}
    connectors = [ConnectorInput(cid, Standard.CCS, 150_000.0, target_voltage_v=400.0) for cid in matrix]
    connectors += [ConnectorInput(cid, Standard.TYPE2, 22_000.0, limit_a=32.0) for cid in range(13, 17)]
    modules = [ModuleInput(name, 30_000.0) for name in names]
    return StationInput(600_000.0, matrix, limit_a=1000.0, meter_w=0.0), connectors, modules


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


def run() -> tuple[list[float], list[float]]:
    rng = random.Random(4)
    station_input, connectors, modules = station()
    engine_s: list[float] = []
    skeleton_s: list[float] = []
    settings = AllocationSettings(module_dwell_s=10.0, dc_min_w={Standard.CCS: 5_000.0})
    for cycle in range(CYCLES):
        now = cycle * CYCLE_S
        index = rng.randrange(len(connectors))  # one event per cycle: plug, unplug or new demand
        c = connectors[index]
        demand = rng.choice([0.0, 20_000.0, 80_000.0, 150_000.0])
        connectors[index] = replace(c, demand_w=demand, session_started_at=(c.session_started_at or now)
                                    if demand else None)
        metered = replace(station_input, meter_w=sum(x.measured_w or 0.0 for x in connectors))
        request = AllocationInput(metered, tuple(connectors), tuple(modules), settings, now)
        started = time.process_time()
        result = allocate_power(request)
        engine_s.append(time.process_time() - started)
        asks = [PowerRequest(x.connector_id, x.limit_w, x.demand_w)
                for x in connectors if x.session_started_at is not None]
        started = time.process_time()
        allocate(station_input.limit_w, asks)
        skeleton_s.append(time.process_time() - started)
        modules = [replace(m, connector_id=a.connector_id, since=a.since)
                   for m, a in zip(modules, result.modules, strict=True)]
        connectors = [replace(x, measured_w=result.connector(x.connector_id).power_w * 0.9,
                              previous_w=result.connector(x.connector_id).power_w) for x in connectors]
    return engine_s, skeleton_s


class _ErrorLog(logging.Handler):
    """Keeps what the station logged at ERROR, to show next to the figures."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


def cpu_table() -> list[str]:
    engine_s, skeleton_s = run()
    lines = [f"CPU time per allocation, {CONNECTORS} connectors x {MODULES} modules, {CYCLES} cycles "
             "(time.process_time; its resolution limits the smallest figures)",
             f"{'':<44} {'p50':>9} {'p99':>9} {'mean':>9}"]
    for label, values in (("power_allocation.allocate_power (full engine)", engine_s),
                          ("equal_share_baseline.allocate (skeleton)", skeleton_s)):
        p50, p99, mean = (percentile(values, 0.5), percentile(values, 0.99), statistics.fmean(values))
        lines.append(f"{label:<44} {p50 * 1e3:>7.3f}ms {p99 * 1e3:>7.3f}ms {mean * 1e3:>7.3f}ms")
    lines.append(f"smartw's control cycle budget: {CYCLE_S * 1e3:.0f} ms")
    return lines


def latency_line(label: str, samples_s: list[float], notes: str = "") -> str:
    if not samples_s:
        return f"  {label:<58} no sample {notes}"
    figures = (percentile(samples_s, 0.5), percentile(samples_s, 0.99), max(samples_s))
    text = " ".join(f"{value * 1e3:>8.2f}" for value in figures)
    return f"  {label:<58} {len(samples_s):>4} {text}  {notes}".rstrip()


def station_table(redis_url: str) -> list[str]:
    from tests.bench.control_latency import station_figures  # needs Django set up (bench_process)

    figures = asyncio.run(station_figures(redis_url, presses=ESTOP_PRESSES, changes=DEMAND_CHANGES))
    return [
        "Latency on the simulated station (ops/station.sim.toml), smartw + sim + counters in one process",
        f"  {'':<58} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
        latency_line("e-stop pressed -> every contactor and link coil off", figures.estop.samples_s,
                     figures.estop.notes),
        f"    IO poll period (smartw's guard loop): {figures.io_poll_s * 1e3:.0f} ms",
        latency_line("  baseline: raw pymodbus read of the e-stop input (TCP)", figures.modbus_read_s),
        latency_line("new EV demand -> new current setpoint at every module", figures.demand.samples_s,
                     figures.demand.notes),
        f"    control cycle: {figures.io_poll_s * 1e3:.0f} ms; charge controller poll_s: "
        f"{figures.controller_poll_s * 1e3:.0f} ms",
        latency_line("  baseline: one CAN round trip through the slcan pty", figures.can_round_trip_s),
        latency_line("event-loop lag of this process (wake-up of a 10 ms sleep)", figures.loop_lag_s),
    ]


def main() -> None:
    started = time.monotonic()
    print("\n".join(cpu_table()), end="\n\n", flush=True)
    errors = _ErrorLog()
    with tempfile.TemporaryDirectory(prefix="bench-control-") as folder:
        logging.basicConfig(filename=Path(folder) / "station.log", level=logging.WARNING)
        logging.getLogger().addHandler(errors)
        try:
            with bench_process(Path(folder)) as redis_url:
                print("\n".join(station_table(redis_url)))
        finally:
            logging.shutdown()
            if errors.messages:
                print(f"\nthe station logged {len(errors.messages)} error(s); the first ones:",
                      *errors.messages[:5], sep="\n  ")
    print(f"\n(took {time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
