"""The Infypower driver through the real path: python-can's slcan interface <-> pty <-> simulated
USB-CAN adapter <-> simulated modules, with device availability on the real bus (Redis)."""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bus import Bus, contract
from tests.support.waiting import async_wait_until
from workers.common.device_status import DeviceStatusPublisher
from workers.drivers.can_link import CanLink, CanSettings
from workers.drivers.infypower import InfypowerModules, ModuleReading, SetpointError
from workers.drivers.infypower_frames import Capabilities, Command, FrameId, StatusFlag
from workers.sim.power_modules import Load, PowerModuleBank, Ramp, SimulatedPowerModule
from workers.sim.slcan_adapter import CanFrame, SimulatedSlcanAdapter

POLL_S = 0.1
ANSWER_TIMEOUT_S = 0.1
SILENCE_S = 0.6  # the modules' silence timeout, short for the test (10 s on a station)
RESEND_S = 0.2


@dataclass
class Rig:
    modules: PowerModuleBank
    adapter: SimulatedSlcanAdapter
    driver: InfypowerModules
    readings: list[ModuleReading] = field(default_factory=list)

    def module(self, name: str) -> SimulatedPowerModule:
        return self.modules.module(name)


def simulated_bank() -> PowerModuleBank:
    ramp = Ramp(voltage_v_per_s=600.0, current_a_per_s=60.0)  # brisk, still seen at 10 Hz polls
    return PowerModuleBank([SimulatedPowerModule(f"pm{n}", n, silence_timeout_s=SILENCE_S, ramp=ramp)
                            for n in (1, 2)])


def make_driver(link: Path, bus: Bus, addresses: list[int],
                readings: list[ModuleReading]) -> InfypowerModules:
    async def collect(reading: ModuleReading) -> None:
        readings.append(reading)

    return InfypowerModules(CanLink(CanSettings(str(link), open_delay_s=0)), addresses,
                            DeviceStatusPublisher(bus), poll_s=POLL_S, answer_timeout_s=ANSWER_TIMEOUT_S,
                            resend_s=RESEND_S, on_reading=collect)


@pytest.fixture
async def rig(bus: Bus, tmp_path: Path) -> AsyncIterator[Rig]:
    modules = simulated_bank()
    adapter = SimulatedSlcanAdapter(tmp_path / "run" / "ttyCAN0", modules)
    adapter.open()
    modules.start()
    readings: list[ModuleReading] = []
    driver = make_driver(adapter.link, bus, [1, 2], readings)
    driver.start()
    try:
        await async_wait_until(lambda: _available(driver, 1, 2), what="both modules polled")
        yield Rig(modules, adapter, driver, readings)
    finally:
        await driver.stop()
        await modules.stop()
        adapter.close()


async def test_setpoints_ramp_the_output_and_the_readback_follows(rig: Rig, bus: Bus) -> None:
    driver, pm1 = rig.driver, rig.module("pm1")
    assert driver.capabilities(1) == Capabilities(1000.0, 150.0, 100.0, 30_000.0)
    await driver.set_output(1, 400.0, 50.0)
    await driver.set_on(1, True)
    await async_wait_until(lambda: _voltage_is(driver, 1, 400.0), timeout_s=5, what="pm1 at 400 V")
    ramp = [r.voltage_v for r in rig.readings if r.name == "pm1" and 0.0 < r.voltage_v < 400.0]
    assert len(ramp) >= 3 and ramp == sorted(ramp)  # seen on the way up (600 V/s, polled at 10 Hz)
    assert (pm1.set_voltage_v, pm1.set_current_a) == (400.0, 50.0)
    assert await driver.read_module_count(1) == 2

    pm1.apply_load(Load(battery_voltage_v=380.0, demand_a=40.0))
    await async_wait_until(lambda: _current_is(driver, 1, 40.0), timeout_s=5, what="pm1 delivering 40 A")
    reading = driver.reading(1)
    assert reading is not None and reading.voltage_v == 380.0 and reading.output_on
    state = await bus.get(contract.DEVICE, device="pm1")
    assert state is not None and state.available and state.fault is None and state.bus == "can"
    assert driver.reading(2) is not None and not driver.reading(2).output_on  # type: ignore[union-attr]


async def test_impossible_setpoints_are_refused(rig: Rig) -> None:
    with pytest.raises(SetpointError, match=r"above the module's 1000\.0 V"):
        await rig.driver.set_output(1, 1200.0, 10.0)
    with pytest.raises(SetpointError, match=r"above the module's 100\.0 A"):
        await rig.driver.set_output(1, 400.0, 150.0)
    with pytest.raises(SetpointError, match="not a non-negative number"):
        await rig.driver.set_output(1, math.nan, 10.0)
    assert rig.driver.setpoint(1).voltage_mv == 0


async def test_a_module_fault_is_published_with_the_device_state(rig: Rig, bus: Bus) -> None:
    rig.module("pm2").inject_fault("overtemp")
    await async_wait_until(lambda: _fault(bus, "pm2"), what="pm2's fault on the bus")
    assert await _fault(bus, "pm2") == "protection,over_temperature"
    reading = rig.driver.reading(2)
    assert reading is not None and reading.status & StatusFlag.OVER_TEMPERATURE
    rig.module("pm2").clear_faults()
    await async_wait_until(lambda: _no_fault(bus, "pm2"), what="pm2's fault cleared")


async def test_a_silent_module_is_unavailable_within_two_polls_and_comes_back(rig: Rig, bus: Bus) -> None:
    driver, pm2 = rig.driver, rig.module("pm2")
    await driver.set_output(2, 400.0, 20.0)
    await driver.set_on(2, True)
    await async_wait_until(lambda: _voltage_is(driver, 2, 400.0), timeout_s=5, what="pm2 at 400 V")

    loop = asyncio.get_running_loop()
    pm2.set_online(False)
    went_silent = loop.time()
    await async_wait_until(lambda: _unavailable(bus, "pm2"), timeout_s=3, what="pm2 unavailable")
    assert loop.time() - went_silent < 3 * (POLL_S + ANSWER_TIMEOUT_S) + 0.3  # two polls, not more
    assert driver.reading(2) is None  # never a stale value
    assert driver.is_available(1)

    await async_wait_until(lambda: _off(pm2), timeout_s=3, what="pm2 off after its silence timeout")
    pm2.set_online(True)
    await async_wait_until(lambda: _available(driver, 2), timeout_s=3, what="pm2 available again")
    await async_wait_until(lambda: _voltage_is(driver, 2, 400.0), timeout_s=5,
                           what="pm2's setpoint re-applied on recovery")
    changes = [d.message for d in (await bus.tail(contract.DEVICE_CHANGES, "0-0", block_ms=1))[1]
               if d.message.device == "pm2"]
    assert [c.available for c in changes] == [True, False, True]


async def test_a_module_that_lost_its_setpoint_gets_it_again_within_the_resend_period(rig: Rig) -> None:
    pm1 = rig.module("pm1")
    await rig.driver.set_output(1, 450.0, 10.0)
    await rig.driver.set_on(1, True)
    await async_wait_until(lambda: _on(pm1), what="pm1 on")
    pm1.switch(False)  # as after a module reset: off, no setpoint
    pm1.set_output(0, 0)
    await async_wait_until(lambda: _on(pm1), timeout_s=RESEND_S + 0.2, what="pm1 on again by the re-send")
    assert pm1.set_voltage_v == 450.0


async def test_stop_switches_every_module_off(rig: Rig) -> None:
    await rig.driver.set_output(1, 500.0, 10.0)
    await rig.driver.set_on(1, True)
    await async_wait_until(lambda: _on(rig.module("pm1")), what="pm1 on")
    await rig.driver.stop()
    assert not rig.module("pm1").commanded_on


async def test_a_failing_reading_consumer_ends_run_with_its_error_and_the_modules_off(
        bus: Bus, tmp_path: Path) -> None:
    modules = simulated_bank()
    adapter = SimulatedSlcanAdapter(tmp_path / "ttyCAN0", modules)
    adapter.open()
    failing = asyncio.Event()

    async def publish(reading: ModuleReading) -> None:
        if failing.is_set():
            raise ConnectionError("Redis went away")

    driver = InfypowerModules(CanLink(CanSettings(str(adapter.link), open_delay_s=0)), [1],
                              DeviceStatusPublisher(bus), poll_s=POLL_S, answer_timeout_s=ANSWER_TIMEOUT_S,
                              on_reading=publish)
    running = asyncio.create_task(driver.run())
    try:
        await async_wait_until(lambda: _available(driver, 1), what="pm1 polled")
        await driver.set_on(1, True)
        await async_wait_until(lambda: _on(modules.module("pm1")), what="pm1 on")
        failing.set()
        with pytest.raises(ConnectionError, match="Redis went away"):  # unchanged, not a group
            await asyncio.wait_for(running, timeout=3)
        assert not modules.module("pm1").commanded_on
        assert not driver.link.connected
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        adapter.close()


# --- wrong answers --------------------------------------------------------------------------

@dataclass
class Misbehaving:
    """A stand-in on the CAN bus: real simulated modules whose answers it spoils per `mode`."""

    inner: PowerModuleBank
    mode: str | None = None
    bitrate: int = 125_000

    def receive(self, frame: CanFrame) -> list[CanFrame]:
        return [self._spoil(answer) for answer in self.inner.receive(frame)]

    def _spoil(self, answer: CanFrame) -> CanFrame:
        frame_id = FrameId.decode(answer.arbitration_id)
        if self.mode == "short":
            return CanFrame(answer.arbitration_id, answer.data[:6])
        if self.mode == "error_code":
            return CanFrame(answer.arbitration_id | 0x03 << 26, answer.data)
        if self.mode == "unknown_command":
            return CanFrame(answer.arbitration_id & ~(0x3F << 16) | 0x3E << 16, answer.data)
        if self.mode == "not_a_number" and frame_id.command == Command.READ_OUTPUT:
            return CanFrame(answer.arbitration_id, struct.pack(">ff", math.nan, 0.0))
        if self.mode == "other_module":
            return CanFrame(answer.arbitration_id & ~0xFF | 0x09, answer.data)
        return answer


@pytest.mark.parametrize(("mode", "logged"), [
    ("short", "with 6 bytes instead of 8"),
    ("error_code", "error code 0x3 (DATA_INVALID)"),
    ("unknown_command", "answered with unknown command 0x3E"),
    ("not_a_number", "implausible output voltage nan"),
    ("other_module", "module address 0x09, which station.toml does not list"),
])
async def test_wrong_answers_are_logged_once_and_make_the_module_unavailable(
        mode: str, logged: str, bus: Bus, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stand_in = Misbehaving(simulated_bank())
    adapter = SimulatedSlcanAdapter(tmp_path / "ttyCAN0", stand_in)
    adapter.open()
    driver = make_driver(adapter.link, bus, [1], [])
    driver.start()
    try:
        await async_wait_until(lambda: _available(driver, 1), what="pm1 polled")
        with caplog.at_level(logging.DEBUG, logger="workers.drivers.infypower"):
            stand_in.mode = mode
            await async_wait_until(lambda: _unavailable(bus, "pm1"), timeout_s=3, what="pm1 unavailable")
            await async_wait_until(lambda: _polls_failed(driver, 3), what="more failed polls")
        complaints = [r for r in caplog.records
                      if r.name == "workers.drivers.infypower" and logged in r.getMessage()]
        if mode == "other_module":
            assert complaints and all(r.levelno == logging.WARNING for r in complaints)
        else:  # ERROR once, then DEBUG until the module answers well again
            assert [r.levelno for r in complaints][:2] == [logging.ERROR, logging.DEBUG]
            assert sum(r.levelno == logging.ERROR for r in complaints) == 1
        assert driver.reading(1) is None
        stand_in.mode = None
        await async_wait_until(lambda: _available(driver, 1), timeout_s=3, what="pm1 answers well again")
    finally:
        await driver.stop()
        adapter.close()


# --- probes ---------------------------------------------------------------------------------

async def _available(driver: InfypowerModules, *addresses: int) -> bool:
    return all(driver.is_available(address) for address in addresses)


async def _voltage_is(driver: InfypowerModules, address: int, voltage_v: float) -> bool:
    reading = driver.reading(address)
    return reading is not None and reading.voltage_v == voltage_v


async def _current_is(driver: InfypowerModules, address: int, current_a: float) -> bool:
    reading = driver.reading(address)
    return reading is not None and reading.current_a == current_a


async def _unavailable(bus: Bus, device: str) -> bool:
    state = await bus.get(contract.DEVICE, device=device)
    return state is not None and not state.available


async def _fault(bus: Bus, device: str) -> str | None:
    state = await bus.get(contract.DEVICE, device=device)
    return state.fault if state is not None else None


async def _no_fault(bus: Bus, device: str) -> bool:
    state = await bus.get(contract.DEVICE, device=device)
    return state is not None and state.available and state.fault is None


async def _off(module: SimulatedPowerModule) -> bool:
    return not module.commanded_on


async def _on(module: SimulatedPowerModule) -> bool:
    return module.commanded_on


async def _polls_failed(driver: InfypowerModules, count: int) -> bool:
    return driver.health(1).failures_in_row >= count
