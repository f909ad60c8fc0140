"""Safety invariant 4 end to end: a hung smartw stops refreshing its controller's lease, and the
controller drops its output by itself, before anything restarts smartw."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from tests.e2e.test_faults import start_remotely
from tests.support.hardware import load_config, sync_tool_wire
from tests.support.station import Station
from tests.support.waiting import wait_until
from workers.sim.csms import Csms

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CONTROLLER_ID = 21  # connector 1's station_dc controller
LEASE_STATE, EXPIRED = 14, 2  # docs/controller-protocol.md: input register 14 `lease_state`
ENABLE = 0  # holding register 0


async def test_a_hung_smartw_lets_the_controller_lease_run_out(csms: Csms, station: Station) -> None:
    await start_remotely(csms, station, 1)
    with sync_tool_wire(load_config(station.config_path)) as wire:
        assert wire.read_holding_registers(ENABLE, count=1, device_id=CONTROLLER_ID).registers == [1]
        smartw = station.running_pid("smartw")
        assert smartw is not None
        os.kill(smartw, signal.SIGSTOP)  # smartw hangs: no more writes, no heartbeat
        try:  # the 2 s lease, the last write's age and a read; chargepoint replaces smartw later
            wait_until(lambda: wire.read_input_registers(LEASE_STATE, count=1, device_id=CONTROLLER_ID)
                       .registers == [EXPIRED], timeout_s=4.0, what="the controller's lease to run out")
            assert wire.read_holding_registers(ENABLE, count=1, device_id=CONTROLLER_ID).registers == [0]
        finally:
            with contextlib.suppress(ProcessLookupError):  # chargepoint may have replaced it already
                os.kill(smartw, signal.SIGCONT)
