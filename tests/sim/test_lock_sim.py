"""A Type 2 socket's cable lock on the simulated IO module, driven and read by the real IO
driver over a real Modbus TCP server: the position switch follows the coil after the delay,
`lock_stuckN` jams the bolt where it is (locking fails: OCTT TC_024; unlocking fails: TC_030),
the e-stop does not move it, the host watchdog drops its coil, and a restarted driver writes the
coil with its first write. Both IO layouts (ICP DAS-style bits, Owen bitmask registers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pymodbus.server import ModbusTcpServer

from tests.support.waiting import async_wait_until
from workers.common.redis_server import free_port
from workers.common.station_config import StationConfig
from workers.drivers.io_module import IoModule, IoSnapshot
from workers.drivers.modbus_hub import ModbusHub
from workers.sim.devices import absent_devices
from workers.sim.faults import UnknownFault
from workers.sim.io_module import SimIoModule

DELAY_S = 0.1  # the bolt's travel (the simulator's contact delay)
SOCKET = 2  # connector 2: a Type 2 socket with a lock; connector 1: CCS, fixed cable
IO, IO_INPUTS = 10, 11
LAYOUTS = {
    "bits": {"layout": "bits", "inputs": {"estop": 0}},
    "owen": {"layout": "owen", "input_device_id": IO_INPUTS,
             "inputs": {"estop": {"address": 0, "polarity": "nc"}}},
}


def station_config(port: int, layout: str, **io_fields: object) -> StationConfig:
    def connector(cid: int, standard: str, **fields: object) -> dict[str, object]:
        return {"id": cid, "standard": standard, "max_power_kw": 22, "contactor_coil": cid - 1,
                "contactor_feedback": 7 + cid, "meter": {"bus": "tcp", "device_id": cid, "model": "sdm630"},
                "controller": {"bus": "tcp", "device_id": 20 + cid}, **fields}

    return StationConfig.model_validate({
        "station": {"max_power_kw": 50},
        "buses": {"tcp": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": port, "timeout_s": 0.5}},
        "io_module": {"bus": "tcp", "device_id": IO, "poll_s": 0.1, **LAYOUTS[layout], **io_fields},
        "rfid": {"port": "/dev/null", "baudrate": 9600},
        "connectors": [connector(1, "CCS"), connector(SOCKET, "Type2", lock_coil=5,
                                                      lock_feedback={"address": 12, "polarity": "nc"})],
    })


@dataclass
class Wire:
    io: SimIoModule
    config: StationConfig
    hub: ModbusHub
    driver: IoModule

    async def locked(self, locked: bool) -> IoSnapshot | None:
        snapshot = await self.driver.poll()
        return snapshot if snapshot.locks_locked[SOCKET] is locked else None


async def serve(layout: str, **io_fields: object) -> tuple[Wire, ModbusTcpServer]:
    port = free_port()
    config = station_config(port, layout, **io_fields)
    io = SimIoModule(config, feedback_delay_s=DELAY_S)
    server = ModbusTcpServer([absent_devices(), *io.devices().values()], address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    await io.attach(server)
    hub = ModbusHub("tcp", config.buses["tcp"])
    return Wire(io, config, hub, IoModule.from_config(config, {"tcp": hub})), server


@pytest.fixture(params=["bits", "owen"])
async def wire(request: pytest.FixtureRequest) -> AsyncIterator[Wire]:
    served, server = await serve(request.param)
    try:
        yield served
    finally:
        served.io.detach()
        await served.hub.close()
        await server.shutdown()


@pytest.fixture
async def watched() -> AsyncIterator[Wire]:
    served, server = await serve("bits", watchdog_s=0.3)
    try:
        yield served
    finally:
        served.io.detach()
        await served.hub.close()
        await server.shutdown()


async def test_the_position_switch_follows_the_lock_coil_after_the_bolt_travels(wire: Wire) -> None:
    loop = asyncio.get_running_loop()
    first = await wire.driver.poll()
    assert (first.lock_coils[SOCKET], first.locks_locked[SOCKET]) == (False, False)
    assert SOCKET not in first.contactor_faults and 1 not in first.lock_coils, "CCS has a fixed cable"

    await wire.driver.set_lock(SOCKET, True)
    commanded = loop.time()
    moving = await wire.driver.poll()
    assert moving.lock_coils[SOCKET] and not moving.locks_locked[SOCKET]
    await async_wait_until(lambda: wire.locked(True), timeout_s=2, what="locked")
    assert loop.time() - commanded >= DELAY_S - 0.01
    assert wire.io.lock_locked(SOCKET)

    await wire.driver.set_lock(SOCKET, False)
    snapshot = await async_wait_until(lambda: wire.locked(False), timeout_s=2, what="unlocked")
    assert snapshot.outputs_as_commanded and not wire.io.lock_locked(SOCKET)
    with pytest.raises(KeyError):
        await wire.driver.set_lock(1, True)


async def test_a_stuck_lock_stays_where_it_is_until_the_fault_is_cleared(wire: Wire) -> None:
    assert "lock_stuck2" in wire.io.fault_kinds and "lock_stuck1" not in wire.io.fault_kinds
    wire.io.inject_fault("lock_stuck2")  # TC_024: the bolt cannot enter
    await wire.driver.set_lock(SOCKET, True)
    await asyncio.sleep(DELAY_S * 3)
    snapshot = await wire.driver.poll()
    assert snapshot.lock_coils[SOCKET] and not snapshot.locks_locked[SOCKET]

    wire.io.clear_faults()
    await async_wait_until(lambda: wire.locked(True), timeout_s=2, what="locked once freed")
    wire.io.inject_fault("lock_stuck2")  # TC_030: now it cannot leave
    await wire.driver.set_lock(SOCKET, False)
    await asyncio.sleep(DELAY_S * 3)
    assert (await wire.driver.poll()).locks_locked[SOCKET] is True
    wire.io.clear_faults()
    await async_wait_until(lambda: wire.locked(False), timeout_s=2, what="unlocked once freed")
    with pytest.raises(UnknownFault, match="lock_stuck2"):
        wire.io.inject_fault("lock_stuck9")


async def test_the_estop_does_not_move_the_lock(wire: Wire) -> None:
    await wire.driver.set_lock(SOCKET, True)
    await async_wait_until(lambda: wire.locked(True), timeout_s=2, what="locked")
    await wire.io.set_estop(True)
    await asyncio.sleep(DELAY_S * 2)
    snapshot = await wire.driver.poll()
    assert snapshot.estop_pressed and snapshot.locks_locked[SOCKET]
    await wire.io.set_estop(False)


async def test_the_host_watchdog_drops_the_lock_coil_and_the_bolt_opens(watched: Wire) -> None:
    await watched.driver.poll()  # programs the watchdog (the lock coil's safe value: off)
    await watched.driver.set_lock(SOCKET, True)
    await async_wait_until(lambda: watched.locked(True), timeout_s=2, what="locked")
    await asyncio.sleep(0.4)  # the host goes silent longer than the watchdog
    await watched.io.tick()
    await async_wait_until(lambda: _bolt_open(watched.io), timeout_s=2, what="the bolt open")
    snapshot = await watched.driver.poll()
    assert not snapshot.lock_coils[SOCKET] and not snapshot.outputs_as_commanded


async def test_a_restarted_driver_writes_the_lock_coil_with_its_first_write(wire: Wire) -> None:
    await wire.driver.set_lock(SOCKET, True)
    await async_wait_until(lambda: wire.locked(True), timeout_s=2, what="locked")
    restarted = IoModule.from_config(wire.config, {"tcp": wire.hub})  # smartw started again
    await restarted.open_all()
    snapshot = await restarted.poll()
    assert not snapshot.lock_coils[SOCKET] and snapshot.outputs_as_commanded
    await async_wait_until(lambda: wire.locked(False), timeout_s=2, what="unlocked")


async def _bolt_open(io: SimIoModule) -> bool:
    await io.tick()
    return not io.lock_locked(SOCKET)
