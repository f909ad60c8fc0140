"""Latency figures of smartw against the simulator, for tests/bench/control.py (import it only
after tests/bench/control_env.py has set Django up).

- E-stop: every connector contactor and one link per power module closed through smartw's own
  IO driver, the e-stop pressed in the simulator at a random moment of the guard's period (t0),
  then the simulated IO module's coil table sampled every millisecond until every contactor and
  link coil is off (t1). Released, and smartw out of its fault, before the next press.
  Baseline: one raw Modbus TCP read of the e-stop input with a plain pymodbus client.
- New EV demand: a CCS session on connector 1 fed by its linked modules; the simulated EV's
  maximum power switches between two values that both need the same four modules (t0), and the
  simulated modules are sampled every millisecond until every module linked to connector 1 has
  received over CAN a current setpoint that moved at least half the expected step (t1). Each
  change starts from steady setpoints and currents. Baseline: one CAN request/answer round trip
  through the slcan pty (smartw's own driver asking a module for its module count).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient

from bus.enums import StartSource, StopReason
from bus.messages import StartRequest, StopRequest
from tests.bench.control_rig import BenchStation, bench_station
from tests.support.waiting import async_wait_until
from workers.common.power_config import link_key
from workers.common.station_config import ModbusTcpBus
from workers.drivers.io_layout import layout_for
from workers.drivers.registers import FunctionCode
from workers.sim.ev import Battery, SimulatedEv

SAMPLE_S = 0.001  # how often t1's condition is checked
REACTION_TIMEOUT_S = 3.0  # a reaction slower than this counts as missed
CONNECTOR = 1  # the CCS connector charged in the demand part
LOW_KW, HIGH_KW = 105.0, 125.0  # EV maximum powers that both need four 30 kW modules (90..120 kW)
MOVED_SHARE = 0.5  # a setpoint counts as new once it moved this share of the expected step
STEADY_S = 0.5  # setpoints and currents unchanged this long before a demand change
STEADY_A = 0.5
STEADY_TIMEOUT_S = 20.0
ROUND_TRIPS = 200


@dataclass(frozen=True)
class Latency:
    samples_s: list[float]
    missed: int = 0  # reactions slower than REACTION_TIMEOUT_S
    sessions_lost: int = 0  # sessions smartw ended by itself (not counted as samples)

    @property
    def notes(self) -> str:
        notes = [f"{self.missed} missed (> {REACTION_TIMEOUT_S:.0f} s)"] if self.missed else []
        if self.sessions_lost:
            notes.append(f"{self.sessions_lost} session(s) ended by smartw, started again")
        return "; ".join(notes)


class SessionLost(Exception):
    """smartw ended the bench's session (e.g. a controller poll failed)."""


async def _seconds_until(condition: Callable[[], Awaitable[bool]], started: float) -> float | None:
    """Seconds from `started` until `condition` holds, checked every SAMPLE_S; None past the timeout."""
    while time.perf_counter() - started < REACTION_TIMEOUT_S:
        if await condition():
            return time.perf_counter() - started
        await asyncio.sleep(SAMPLE_S)
    return None


# ---- e-stop -> every contactor open -----------------------------------------------------------

def one_link_per_module(station: BenchStation) -> list[tuple[str, int]]:
    """Each module linked to one DC connector, spread over the connectors its links reach."""
    assert station.config.power_modules is not None
    reach: dict[str, list[int]] = {}
    for link in station.config.power_modules.links:
        reach.setdefault(link.module, []).append(link.connector)
    return [(module, connectors[index % len(connectors)])
            for index, (module, connectors) in enumerate(sorted(reach.items()))]


async def estop_latency(station: BenchStation, presses: int) -> Latency:
    rng = random.Random(9)
    connectors = [c.id for c in station.config.connectors]
    links = one_link_per_module(station)
    keys = [*connectors, *(link_key(module, cid) for module, cid in links)]
    period_s = station.config.io_module.poll_s

    async def closed() -> bool:
        return all(station.io.contacts_closed(key) for key in keys)

    async def every_coil_off() -> bool:
        return not await station.coils_on()

    async def recovered() -> bool:
        return station.logic.station_fault is None

    samples, missed = [], 0
    for _ in range(presses):
        await station.close_through_smartw(connectors, links)
        await async_wait_until(closed, timeout_s=2.0, what="contactors and links closed")
        await asyncio.sleep(rng.uniform(0.0, period_s))  # any moment of the guard's period
        started = time.perf_counter()
        await station.station.set_estop(True)
        elapsed = await _seconds_until(every_coil_off, started)
        await station.station.set_estop(False)
        await async_wait_until(recovered, timeout_s=5.0, what="smartw out of its e-stop fault")
        if elapsed is None:
            missed += 1
        else:
            samples.append(elapsed)
    return Latency(samples, missed)


async def modbus_read_round_trips(station: BenchStation) -> list[float]:
    """One read of the e-stop input (its table, one bit or word) by a plain pymodbus client,
    ROUND_TRIPS times."""
    io = station.config.io_module
    bus = station.config.buses[io.bus]
    assert isinstance(bus, ModbusTcpBus)
    wire = layout_for(io).input_bit(io.inputs.estop.address)
    client = AsyncModbusTcpClient(bus.host, port=bus.port, timeout=bus.timeout_s)
    await client.connect()
    read = {FunctionCode.READ_COILS: client.read_coils,
            FunctionCode.READ_DISCRETE_INPUTS: client.read_discrete_inputs,
            FunctionCode.READ_HOLDING_REGISTERS: client.read_holding_registers,
            FunctionCode.READ_INPUT_REGISTERS: client.read_input_registers}[wire.table]
    try:
        samples = []
        for _ in range(ROUND_TRIPS):
            started = time.perf_counter()
            reply = await read(wire.address, count=1, device_id=wire.device_id)
            samples.append(time.perf_counter() - started)
            if reply.isError():
                raise RuntimeError(f"the IO module refused the e-stop read: {reply}")
        return samples
    finally:
        client.close()


# ---- new EV demand -> new module setpoints ------------------------------------------------------

async def start_charging(station: BenchStation) -> SimulatedEv:
    """A CCS EV plugged on CONNECTOR (the one there before unplugged first) and its session
    started (remote, authorised); `steady` tells when the modules feed it."""
    connector = station.logic.connectors[CONNECTOR]
    if station.station.connectors[CONNECTOR].ev is not None:
        station.station.unplug(CONNECTOR)

        async def unplugged() -> bool:
            return not connector.plugged and connector.session is None

        await async_wait_until(unplugged, what="smartw seeing the EV unplugged")
    ev = SimulatedEv(Battery(capacity_kwh=60.0, soc=30.0), target_soc=90.0, max_power_w=LOW_KW * 1000)
    station.station.plug(CONNECTOR, ev)

    async def plugged() -> bool:
        return connector.plugged

    await async_wait_until(plugged, what="smartw seeing the EV plugged")
    reply = await station.logic.requests.start_command(StartRequest(
        connector_id=CONNECTOR, id_tag="BENCH", source=StartSource.REMOTE, authorized=True))
    if not reply.accepted:
        raise RuntimeError(f"the session did not start: {reply.reason}")
    return ev


async def steady(station: BenchStation) -> None:
    """Until the modules linked to CONNECTOR are the allocation's, deliver, and neither their
    setpoints nor their currents moved for STEADY_S. SessionLost if the session ended."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEADY_TIMEOUT_S
    reference: dict[str, tuple[float, float]] = {}
    since = loop.time()
    while loop.time() < deadline:
        if _session_lost(station):
            raise SessionLost
        last = station.logic.power.last
        wanted = set(last.modules_of(CONNECTOR)) if last is not None else set()
        values = {m.name: (m.set_current_a, m.current_a) for m in station.linked_modules(CONNECTOR)}
        delivering = bool(values) and set(values) == wanted and all(a > STEADY_A for _, a in values.values())
        if not delivering or not _within(values, reference):
            reference, since = values, loop.time()
        elif loop.time() - since >= STEADY_S:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"connector {CONNECTOR}'s modules never settled: {reference}")


def _session_lost(station: BenchStation) -> bool:
    connector = station.logic.connectors[CONNECTOR]
    return connector.session is None or connector.stopping


def _within(values: dict[str, tuple[float, float]], reference: dict[str, tuple[float, float]]) -> bool:
    return values.keys() == reference.keys() and all(
        abs(a - b) <= STEADY_A for name in values for a, b in zip(values[name], reference[name], strict=True))


def _ev_asks_w(ev: SimulatedEv) -> float:
    """What the EV asks for, as the simulated controller reports it (ev_sessions/dc.py)."""
    return ev.dc_target_voltage_v() * ev.dc_current_request_a()


async def demand_latency(station: BenchStation, ev: SimulatedEv, changes: int) -> Latency:
    """`changes` demand changes; a session smartw ends is counted and started again."""
    samples, missed, lost = [], 0, 0
    while len(samples) + missed < changes:
        try:
            await steady(station)
        except SessionLost:
            lost += 1
            if lost > changes:
                raise RuntimeError(f"smartw ended {lost} sessions; see the errors it logged") from None
            ev = await start_charging(station)
            continue
        elapsed = await _new_demand(station, ev, LOW_KW if ev.max_power_w >= HIGH_KW * 1000 else HIGH_KW)
        if _session_lost(station):
            continue  # the next steady() counts it
        if elapsed is None:
            missed += 1
        else:
            samples.append(elapsed)
    return Latency(samples, missed, lost)


async def _new_demand(station: BenchStation, ev: SimulatedEv, max_power_kw: float) -> float | None:
    """Seconds from the EV's new maximum power until every linked module has its new setpoint."""
    modules = station.linked_modules(CONNECTOR)
    before = {m.name: m.set_current_a for m in modules}
    asks_before_w = _ev_asks_w(ev)
    started = time.perf_counter()
    ev.max_power_w = max_power_kw * 1000
    step_a = (_ev_asks_w(ev) - asks_before_w) / ev.dc_target_voltage_v() / len(modules)

    async def every_module_moved() -> bool:
        return all((m.set_current_a - before[m.name]) / step_a >= MOVED_SHARE for m in modules)

    return await _seconds_until(every_module_moved, started)


async def stop_charging(station: BenchStation) -> None:
    """End the demand part's session and wait until its links are open again."""
    await station.logic.requests.stop_command(StopRequest(connector_id=CONNECTOR, reason=StopReason.LOCAL))

    async def ended() -> bool:
        return station.logic.connectors[CONNECTOR].session is None and not await station.coils_on()

    await async_wait_until(ended, timeout_s=15.0, what=f"connector {CONNECTOR}'s session ended, links open")


async def can_round_trips(station: BenchStation) -> list[float]:
    """One request/answer frame pair with the first module through smartw's slcan adapter."""
    address = next(iter(station.modules.names))
    samples = []
    for _ in range(ROUND_TRIPS):
        started = time.perf_counter()
        await station.modules.read_module_count(address)
        samples.append(time.perf_counter() - started)
    return samples


# ---- the whole run ----------------------------------------------------------------------------

@dataclass(frozen=True)
class StationFigures:
    estop: Latency
    modbus_read_s: list[float]
    demand: Latency
    can_round_trip_s: list[float]
    io_poll_s: float  # the guard's and the control cycle's period
    controller_poll_s: float  # connector 1's charge controller
    loop_lag_s: list[float]


async def station_figures(redis_url: str, *, presses: int, changes: int) -> StationFigures:
    """Both latencies and their baselines, measured on one running station. The baselines are
    taken while smartw runs: the CAN one during the session, the Modbus one just before the
    e-stop presses."""
    async with bench_station(redis_url) as station:
        ev = await start_charging(station)
        await steady(station)
        can = await can_round_trips(station)
        demand = await demand_latency(station, ev, changes)
        await stop_charging(station)
        modbus = await modbus_read_round_trips(station)
        estop = await estop_latency(station, presses)
        return StationFigures(estop, modbus, demand, can, station.config.io_module.poll_s,
                              station.config.connector(CONNECTOR).controller.poll_s,
                              list(station.loop_lag.samples_s))
