"""Safety invariant 2 (ARCHITECTURE.md), property-tested on StationLogic: e-stop, an open door,
an insulation alarm, a tripped surge arrester or breaker, dropped IO outputs or a lost IO
module open every contactor and switch every power module off at the guard step that first
sees them, and no contactor closes while such a fault stands (nor while a welded contactor
stands).

The hardware is an in-memory StationHardware: the guard's collaborator, recording what smartw
commanded (the real drivers against the simulator are covered by tests/e2e/test_safety_faults.py).
The bus is the real test Redis: `cycle()` reads meters and publishes on it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus import Bus
from webapp.env import REPO_ROOT
from workers.common.station_config import StationConfig, load_station_config
from workers.drivers.controller import ControllerSnapshot, EvState
from workers.drivers.imd import ImdSnapshot
from workers.drivers.infypower import Setpoint
from workers.drivers.io_module import ContactorFault, IoSnapshot
from workers.smartw import faults
from workers.smartw.hardware import HardwareError
from workers.smartw.sessions import StartRefused
from workers.smartw.station import OUTPUTS_DROPPED_POLLS, StationLogic

CONNECTOR_IDS = (1, 2)


@dataclass
class World:
    """What the IO module's inputs say, and whether it answers."""

    io: IoSnapshot = field(default_factory=lambda: IoSnapshot(estop_pressed=False, door_open=False,
                                                              imd_alarm=False))
    lost: bool = False


@dataclass
class MemoryHardware:
    """StationHardware in memory: contactors and controllers as smartw last commanded them."""

    world: World
    contactors: dict[int, bool] = field(default_factory=lambda: dict.fromkeys(CONNECTOR_IDS, False))
    outputs_enabled: dict[int, bool] = field(default_factory=lambda: dict.fromkeys(CONNECTOR_IDS, False))
    locks: dict[int, bool] = field(default_factory=dict)  # a socket's cable lock, its switch as commanded

    async def read_io(self) -> IoSnapshot:
        if self.world.lost:
            raise HardwareError("no answer")
        return replace(self.world.io, contactors_closed=dict(self.contactors), lock_coils=dict(self.locks),
                       locks_locked=dict(self.locks))

    async def set_lock(self, connector_id: int, locked: bool) -> None:
        if self.world.lost:
            raise HardwareError("no answer")
        self.locks[connector_id] = locked

    async def poll_imd(self) -> ImdSnapshot | None:
        return None

    async def set_contactor(self, connector_id: int, closed: bool) -> None:
        if self.world.lost:
            raise HardwareError("no answer")
        self.contactors[connector_id] = closed

    async def set_link(self, module: str, connector_id: int, closed: bool) -> None:
        if closed:
            raise AssertionError("no module answers here, so none is linked")

    async def poll_controller(self, connector_id: int) -> ControllerSnapshot:
        return ControllerSnapshot(ev_state=EvState.A, soc=None, target_soc=None, ev_max_power_w=0.0,
                                  error_code=0)

    async def set_output(self, connector_id: int, enabled: bool, power_limit_w: float) -> None:
        self.outputs_enabled[connector_id] = enabled

    async def open_all(self, *, emergency: bool) -> None:
        """Commanded open even when the module is lost (the real one logs each failed write; its
        host watchdog then drops the outputs)."""
        self.contactors = dict.fromkeys(self.contactors, False)
        self.outputs_enabled = dict.fromkeys(self.outputs_enabled, False)

    async def close(self) -> None:
        return None


@dataclass
class MemoryModules:
    """The power modules as the guard sees them: on or off (this station model has none that
    answer, so the allocation gives them nothing; tests/smartw/test_station_invariants.py covers
    modules in service)."""

    on: bool = False
    names: dict[int, str] = field(default_factory=dict)

    def reading(self, address: int) -> None:
        return None

    def is_available(self, address: int) -> bool:
        return False

    def setpoint(self, address: int) -> Setpoint:
        return Setpoint()

    async def set_output(self, address: int, voltage_v: float, current_a: float) -> None:
        raise AssertionError("no module answers here, so none is given a setpoint")

    async def set_on(self, address: int, on: bool) -> None:
        raise AssertionError("no module answers here, so none is switched on")

    async def switch_all_off(self) -> None:
        self.on = False


# ---- the steps ------------------------------------------------------------------------

io_inputs = st.builds(
    IoSnapshot, estop_pressed=st.booleans(), door_open=st.booleans(), imd_alarm=st.booleans(),
    spd_tripped=st.sampled_from([None, False, True]), breaker_tripped=st.sampled_from([None, False, True]),
    contactor_faults=st.dictionaries(st.sampled_from(CONNECTOR_IDS), st.sampled_from(list(ContactorFault)),
                                     max_size=2),
    outputs_as_commanded=st.booleans(),
)
quiet_inputs = st.just(IoSnapshot(estop_pressed=False, door_open=False, imd_alarm=False))
steps = st.one_of(
    st.tuples(st.just("io"), st.one_of(io_inputs, quiet_inputs, quiet_inputs)),
    st.tuples(st.just("lost"), st.booleans()),
    st.tuples(st.just("guard"), st.none()),
    st.tuples(st.just("cycle"), st.none()),
    st.tuples(st.just("close"), st.sampled_from(CONNECTOR_IDS)),
    st.tuples(st.just("modules_on"), st.none()),
)


@dataclass
class Oracle:
    """The station fault the guard must have seen, from the IO polls it made."""

    differing_polls: int = 0

    def poll(self, world: World) -> bool:
        """After one guard step: must a station fault stand?"""
        if world.lost:
            return True
        io = world.io
        self.differing_polls = 0 if io.outputs_as_commanded else self.differing_polls + 1
        return faults.station_fault(io) is not None or self.differing_polls >= OUTPUTS_DROPPED_POLLS


@pytest.fixture(scope="module")
def config() -> StationConfig:
    data_dir = Path(os.environ["STATION_DATA_DIR"])
    return load_station_config(REPO_ROOT / "ops" / "station.sim.toml", data_dir=data_dir)


def assert_safe(hardware: MemoryHardware, modules: MemoryModules, where: str) -> None:
    assert not any(hardware.contactors.values()), f"a contactor closed {where}"
    assert not any(hardware.outputs_enabled.values()), f"a controller offers energy {where}"
    assert not modules.on, f"power modules on {where}"


async def run(config: StationConfig, scenario: list[tuple[str, object]]) -> None:
    world, modules = World(), MemoryModules()
    hardware = MemoryHardware(world)
    bus = Bus("test-guard")
    logic = StationLogic(config, bus, hardware, power_modules=modules)
    oracle = Oracle()
    try:
        for index, (action, value) in enumerate(scenario):
            where = f"at step {index} ({action}) of {scenario}"
            if action == "io":
                world.io = value
            elif action == "lost":
                world.lost = value
            elif action == "guard":
                must_fault = oracle.poll(world)
                await logic.guard()
                assert (logic.station_fault is not None) == must_fault, where
            elif action == "cycle":
                await logic.cycle()
            elif action == "close":
                await attempt_close(logic, hardware, int(value), where)
            elif action == "modules_on" and logic.station_fault is None:
                modules.on = True  # the allocation switches modules on only while no fault stands
            if logic.station_fault is not None:
                assert_safe(hardware, modules, f"while {logic.station_fault.info} stands, {where}")
    finally:
        await bus.close()


async def attempt_close(logic: StationLogic, hardware: MemoryHardware, connector_id: int, where: str) -> None:
    """A start's contactor command, through the same path SessionControl uses."""
    welded = any(c.contactor_fault is faults.CONTACTOR_WELDED for c in logic.connectors.values())
    forbidden = logic.station_fault is not None or welded
    try:
        await logic.control.hardware.set_contactor(connector_id, True)
    except StartRefused as refused:
        assert forbidden or logic.connectors[connector_id].fault is not None, where
        assert refused.reason
        return
    except HardwareError:
        assert hardware.world.lost, where
        return
    assert not forbidden, f"contactor closed despite a fault {where}"
    hardware.outputs_enabled[connector_id] = True  # the session's controller then offers energy


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=st.lists(steps, min_size=1, max_size=40))
def test_a_station_fault_makes_everything_safe_at_once_and_keeps_it_so(
        config: StationConfig, redis_client: redis.Redis, scenario: list[tuple[str, object]]) -> None:
    asyncio.run(run(config, scenario))


def test_an_open_door_while_charging_opens_the_contactor_and_switches_modules_off(
        config: StationConfig, redis_client: redis.Redis) -> None:
    """The first guard step that sees the door open is the one that makes everything safe."""
    quiet = IoSnapshot(estop_pressed=False, door_open=False, imd_alarm=False)
    open_door = replace(quiet, door_open=True)
    asyncio.run(run(config, [("io", quiet), ("guard", None), ("close", 1), ("modules_on", None),
                             ("io", open_door), ("guard", None), ("close", 2), ("cycle", None)]))
