"""Meter benchmark: `.venv/bin/python tests/bench/meters.py` (not part of pytest; about 30 s).

Prints, measured in the same run:
- per meter model: the read requests one poll makes (`plan_blocks`) next to the fewest
  contiguous blocks that can cover its map (`minimal_block_count`, computed independently);
- the RTU poll cycle of each Modbus model at 9600 and 115200 baud over a simulated RS485 line
  (workers/sim/rtu_line.py: two pseudo-terminals, bytes released at the wire's pace), next
  to the wire-time floor of the very bytes that cycle carried (requests + answers, at
  10 or 11 bits per byte). The difference is what the driver, pymodbus, the inter-frame gap
  and the OS add.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != here]
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import asyncio  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from workers.common.station_config import ModbusRtuBus  # noqa: E402
from workers.drivers.meter import (  # noqa: E402  # noqa: E402
    MeterDriver,
    MeterSnapshot,
    encode_quantities,
    minimal_block_count,
    plan_blocks,
)
from workers.drivers.meter_maps import METER_MAPS, MeterMap  # noqa: E402
from workers.drivers.modbus_hub import ModbusHub  # noqa: E402
from workers.sim import devices  # noqa: E402
from workers.sim.modbus_answers import device_switch  # noqa: E402
from workers.sim.rtu_line import SimulatedRtuBus  # noqa: E402

DEVICE_ID = 1
POLLS = 30
BAUDRATES = (9600, 115200)
INTER_FRAME_DELAY_S = 0.004  # the 3.5-character gap at 9600 baud, what station.toml defaults near


def block_table() -> list[str]:
    lines = [f"{'model':<14} {'registers':>9} {'requests/poll':>13} {'minimal blocks':>14}"]
    for model, meter in sorted(METER_MAPS.items()):
        words = sum(register.data_type.words for register in meter.registers)
        lines.append(f"{model:<14} {words:>9} {len(plan_blocks(meter)):>13} {minimal_block_count(meter):>14}")
    return lines


async def cycle(meter: MeterMap, baudrate: int, folder: Path) -> tuple[float, float, int]:
    """Median poll time, the wire floor of one poll's bytes, and those bytes."""
    config = ModbusRtuBus(kind="modbus_rtu", port=str(folder / f"tty-{meter.model}-{baudrate}"),
                          baudrate=baudrate, timeout_s=2.0, inter_frame_delay_s=INTER_FRAME_DELAY_S)
    sim = SimulatedRtuBus(config, [devices.absent_devices(), devices.meter_device(DEVICE_ID, meter)],
                          {DEVICE_ID: device_switch(meter.model, serial=True)})
    server = await sim.start()
    snapshot = MeterSnapshot(energy_wh=123_456.0, power_w=7_400.0, voltage_v=230.0, current_a=10.7)
    for write in encode_quantities(meter, snapshot):
        await server.async_setValues(DEVICE_ID, write.table, write.address, write.words)
    hub = ModbusHub("bench", config)
    driver = MeterDriver(hub, DEVICE_ID, meter.model)
    try:
        await driver.poll()  # connect, warm up
        times = []
        carried = sim.line.bytes_carried
        for _ in range(POLLS):
            started = time.perf_counter()
            await driver.poll()
            times.append(time.perf_counter() - started)
        per_poll = (sim.line.bytes_carried - carried) // POLLS
        return statistics.median(times), sim.line.timing.wire_time_s(per_poll), per_poll
    finally:
        await hub.close()
        await sim.stop()


async def rtu_table() -> list[str]:
    lines = [f"{'model':<14} {'baud':>6} {'bytes/poll':>10} {'cycle ms':>9} {'wire floor ms':>13} "
             f"{'overhead':>8}"]
    with tempfile.TemporaryDirectory() as folder:
        for model, meter in sorted(METER_MAPS.items()):
            for baudrate in BAUDRATES:
                median_s, floor_s, carried = await cycle(meter, baudrate, Path(folder))
                lines.append(f"{model:<14} {baudrate:>6} {carried:>10} {median_s * 1000:>9.1f} "
                             f"{floor_s * 1000:>13.1f} {median_s / floor_s:>7.2f}x")
    return lines


def main() -> None:
    import django

    django.setup()
    print("Read requests per poll (the driver's plan) vs the minimal number of contiguous blocks")
    print("\n".join(block_table()))
    print()
    print(f"RTU poll cycle over a simulated line (median of {POLLS} polls; inter-frame delay "
          f"{INTER_FRAME_DELAY_S * 1000:.0f} ms per request) vs the wire time of the same bytes")
    print("\n".join(asyncio.run(rtu_table())))


if __name__ == "__main__":
    main()
