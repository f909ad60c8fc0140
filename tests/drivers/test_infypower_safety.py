"""Power modules when the controller side fails: a dead controller process, a USB-CAN adapter
that is missing, unplugged or plugged back, a tty that is no adapter, a wrong bitrate.
Real path throughout: python-can slcan <-> pty <-> simulated adapter <-> simulated modules."""

from __future__ import annotations

import asyncio
import logging
import os
import pty
import subprocess
import sys
import tty
from pathlib import Path

import pytest
import redis

from bus import Bus, contract
from tests.sim.processes import REPO_ROOT
from tests.support.waiting import async_wait_until
from workers.common.device_status import DeviceStatusPublisher
from workers.drivers.can_link import CanLink, CanSettings
from workers.drivers.errors import DeviceError
from workers.drivers.infypower import InfypowerModules
from workers.drivers.infypower_frames import StatusFlag
from workers.sim.power_modules import PowerModuleBank, SimulatedPowerModule
from workers.sim.slcan_adapter import AdapterFlag, SimulatedSlcanAdapter

SILENCE_S = 1.0


def one_module() -> PowerModuleBank:
    return PowerModuleBank([SimulatedPowerModule("pm1", 1, silence_timeout_s=SILENCE_S)])


def driver_for(link: Path, bus: Bus, *, bitrate: int = 125_000) -> InfypowerModules:
    return InfypowerModules(CanLink(CanSettings(str(link), bitrate=bitrate, open_delay_s=0)), [1],
                            DeviceStatusPublisher(bus), poll_s=0.1, answer_timeout_s=0.1, resend_s=0.3)


async def test_modules_switch_off_when_the_controller_process_dies(
        redis_client: redis.Redis, tmp_path: Path) -> None:
    modules = one_module()
    adapter = SimulatedSlcanAdapter(tmp_path / "ttyCAN0", modules)
    adapter.open()
    modules.start()
    pm1 = modules.module("pm1")
    controller = subprocess.Popen([sys.executable, "-m", "tests.drivers.infypower_controller",
                                   str(adapter.link), "1"], cwd=REPO_ROOT, env=os.environ.copy(),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        await async_wait_until(lambda: _at_400_v(pm1), what="the controller driving pm1 to 400 V")
        # a lasting state, not an event: the re-sent setpoints keep pm1 on past its silence timeout
        await asyncio.sleep(SILENCE_S * 1.5)
        assert pm1.commanded_on and not pm1.comm_interrupted

        controller.kill()
        controller.wait(timeout=5)
        loop = asyncio.get_running_loop()
        died = loop.time()
        await async_wait_until(lambda: _off(pm1), timeout_s=SILENCE_S * 3, what="pm1 off on its own")
        assert loop.time() - died >= SILENCE_S - 0.3 - 0.1  # timed from the last frame (resend 0.3 s)
        assert pm1.status() & StatusFlag.COMM_INTERRUPT
    finally:
        if controller.poll() is None:
            controller.kill()
        controller.wait(timeout=5)
        if controller.stdout is not None:
            controller.stdout.close()
        await modules.stop()
        adapter.close()


async def test_the_adapter_may_appear_late_go_away_and_come_back(
        bus: Bus, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    link = tmp_path / "run" / "ttyCAN0"
    modules = one_module()
    modules.start()
    driver = driver_for(link, bus)
    driver.start()
    adapter = SimulatedSlcanAdapter(link, modules)
    try:
        await async_wait_until(lambda: _logged(caplog, "cannot open the CAN adapter"), what="open failure")
        with pytest.raises(DeviceError, match="not open"):
            await driver.set_output(1, 400.0, 10.0)  # kept, and sent once the adapter is there
        adapter.open()  # plugged in
        await async_wait_until(lambda: _available(driver), timeout_s=5, what="pm1 reached once plugged")
        await async_wait_until(lambda: _voltage_setpoint_applied(modules), what="cached setpoint sent")

        adapter.close()  # unplugged
        await async_wait_until(lambda: _logged(caplog, "CAN adapter lost"), what="loss noticed")
        await async_wait_until(lambda: _unavailable(bus), timeout_s=3, what="pm1 unavailable")
        assert driver.reading(1) is None

        adapter.open()  # plugged back (a new pty behind the same link)
        await async_wait_until(lambda: _available(driver), timeout_s=5, what="pm1 back")
    finally:
        await driver.stop()
        await modules.stop()
        adapter.close()
    errors = [r for r in caplog.records if "cannot open the CAN adapter" in r.getMessage()]
    assert sum(r.levelno == logging.ERROR for r in errors) <= 2  # once per outage, retries at DEBUG


async def test_a_tty_that_is_no_slcan_adapter_is_reported(
        bus: Bus, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    master, slave = pty.openpty()  # a serial line where nothing answers
    tty.setraw(slave)
    link = tmp_path / "ttyUSB0"
    link.symlink_to(os.ttyname(slave))
    driver = driver_for(link, bus)
    driver.start()
    try:
        await async_wait_until(lambda: _logged(caplog, "no slcan adapter answers"), timeout_s=5,
                               what="the wrong port reported")
        await async_wait_until(lambda: _unavailable(bus), timeout_s=3, what="pm1 unavailable")
    finally:
        await driver.stop()
        os.close(master)
        os.close(slave)


async def test_at_the_wrong_bitrate_the_modules_stay_unreachable(
        bus: Bus, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    modules = one_module()
    adapter = SimulatedSlcanAdapter(tmp_path / "ttyCAN0", modules)
    adapter.open()
    driver = driver_for(adapter.link, bus, bitrate=250_000)
    driver.start()
    try:
        await async_wait_until(lambda: _unavailable(bus), timeout_s=3, what="pm1 unavailable")
        assert _logged_now(caplog, "no frame gets through")
        assert adapter.protocol.flags & AdapterFlag.BUS_ERROR
    finally:
        await driver.stop()
        adapter.close()


async def _at_400_v(module: SimulatedPowerModule) -> bool:
    return module.commanded_on and module.voltage_v == 400.0


async def _off(module: SimulatedPowerModule) -> bool:
    return not module.commanded_on


async def _available(driver: InfypowerModules) -> bool:
    return driver.is_available(1)


async def _unavailable(bus: Bus) -> bool:
    state = await bus.get(contract.DEVICE, device="pm1")
    return state is not None and not state.available


async def _voltage_setpoint_applied(modules: PowerModuleBank) -> bool:
    return modules.module("pm1").set_voltage_v == 400.0


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return _logged_now(caplog, text)


def _logged_now(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)
