"""A station controller process for the crash test: `python -m tests.drivers.infypower_controller
LINK ADDRESS` drives the module at ADDRESS to 400 V / 20 A through the slcan adapter at LINK,
prints "driving" and keeps re-sending until it is killed (REDIS_URL from the environment)."""

from __future__ import annotations

import asyncio
import sys

from bus import Bus
from workers.common.device_status import DeviceStatusPublisher
from workers.drivers.can_link import CanLink, CanSettings
from workers.drivers.infypower import InfypowerModules

RESEND_S = 0.3


async def drive(link: str, address: int) -> None:
    bus = Bus("infypower-controller")
    driver = InfypowerModules(CanLink(CanSettings(link, open_delay_s=0)), [address],
                              DeviceStatusPublisher(bus), poll_s=0.1, answer_timeout_s=0.1,
                              resend_s=RESEND_S)
    driver.start()
    await asyncio.wait_for(driver.link.opened.wait(), timeout=10)
    await driver.set_output(address, 400.0, 20.0)
    await driver.set_on(address, True)
    print("driving", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(drive(sys.argv[1], int(sys.argv[2])))
