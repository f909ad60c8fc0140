"""Reset and UnlockConnector from the CSMS in the running simulated station: a soft reset stops
the session with its reason, chargepoint restarts every service but the simulator, the station
boots again and an Inoperative connector stays Unavailable; the Type 2 socket's cable lock closes
for a session and opens on UnlockConnector (after the session is finished), a jammed lock is a
ConnectorLockFailure, and a fixed cable answers NotSupported.

Connector 2 (Type 2 socket with a lock, AC) charges; connector 1 (CCS, fixed cable) is the one set
Inoperative.
"""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call

from tests.e2e.conftest import CHARGE_POINT_ID
from tests.e2e.helpers import sim, status_notification
from tests.support.hardware import load_config, tool_bus
from tests.support.station import Station, pid_alive
from tests.support.waiting import async_wait_until
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import FunctionCode
from workers.sim.csms import Csms, ReceivedCall

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CHARGING = 2
INOPERATIVE = 1


async def charging(csms: Csms, station: Station, tag: str) -> ReceivedCall:
    """An EV on connector 2 started remotely; returns its StartTransaction once it charges."""
    starts = len(csms.calls("StartTransaction"))
    await sim(station, "plug", str(CHARGING), "--soc", "40")
    await status_notification(csms, CHARGING, "Preparing")
    assert await csms.remote_start(CHARGE_POINT_ID, tag, connector_id=CHARGING) == "Accepted"
    start = await csms.wait_for_call("StartTransaction", count=starts + 1, timeout_s=20)
    await status_notification(csms, CHARGING, "Charging")
    return start


async def restarted(csms: Csms, station: Station, before: dict[str, int | None], boots: int) -> None:
    """The station booted again at the CSMS and every service but the simulator has a new process."""
    await csms.wait_for_call("BootNotification", count=boots + 1, timeout_s=60)
    services = [name for name in station.services]
    now = await asyncio.to_thread(station.wait_running, services)
    assert now["sim"] == before["sim"], "the simulator plays the hardware: it keeps running"
    for name in services:
        if name != "sim":
            assert now[name] != before[name] and not pid_alive(before[name]), name  # type: ignore[arg-type]


def statuses_after(csms: Csms, boot: ReceivedCall, connector_id: int) -> list[str]:
    return [c.payload["status"] for c in csms.calls("StatusNotification")
            if c.at > boot.at and c.payload["connectorId"] == connector_id]


async def test_soft_reset_stops_the_session_restarts_the_services_and_keeps_unavailable(
        csms: Csms, station: Station) -> None:
    """TC_016 (soft reset with a transaction) and, for the Inoperative connector, TC_013/TC_034's
    rule that Unavailable survives a reset."""
    await status_notification(csms, INOPERATIVE, "Available")  # smartw serves its commands
    result = await csms.send(CHARGE_POINT_ID, call.ChangeAvailability(connector_id=INOPERATIVE,
                                                                      type="Inoperative"))
    assert result.status == "Accepted"
    await status_notification(csms, INOPERATIVE, "Unavailable")
    start = await charging(csms, station, "RESET-SOFT")
    before, boots = station.pids(), len(csms.calls("BootNotification"))

    assert (await csms.send(CHARGE_POINT_ID, call.Reset(type="Soft"))).status == "Accepted"

    stop = await csms.wait_for_call("StopTransaction", timeout_s=30)
    assert stop.payload["reason"] == "SoftReset"
    assert stop.payload["transactionId"] == start.response["transactionId"]
    assert stop.payload["meterStop"] >= start.payload["meterStart"]
    await restarted(csms, station, before, boots)
    boot = csms.calls("BootNotification")[-1]
    assert stop.at < boot.at, "the StopTransaction was delivered before the services restarted"
    await async_wait_until(lambda: _reported(csms, boot, INOPERATIVE), timeout_s=20,
                           what="connector 1's status after the reboot")
    assert set(statuses_after(csms, boot, INOPERATIVE)) == {"Unavailable"}
    assert len(csms.calls("StopTransaction")) == 1


async def test_the_socket_locks_for_its_session_and_unlocks_on_request_or_faults_visibly(
        csms: Csms, station: Station) -> None:
    """Connector 2 is a Type 2 socket with a cable lock (ops/station.sim.toml). TC_018_1: unlock
    with a transaction (stopped first, UnlockCommand, Finishing); TC_030: a jammed lock answers
    UnlockFailed and shows ConnectorLockFailure; TC_017_1: unlock without a transaction; TC_024:
    a lock that cannot close faults the start, and no transaction begins; TC_017_2/TC_031: the
    CCS's fixed cable and unknown connectors are NotSupported. The hard reset (TC_013, TC_015) is
    tested in tests/ocpp16/test_core_actions.py, chargepoint's hard restart in
    tests/chargepoint/test_restart.py, the fixed cable with a transaction (TC_018_2) in
    tests/ocpp16/test_core_actions.py."""
    start = await charging(csms, station, "UNLOCK-1")
    assert await socket_locked(station), "the cable is locked while the session runs"

    statuses = len(csms.calls("StatusNotification"))
    result = await csms.send(CHARGE_POINT_ID, call.UnlockConnector(connector_id=CHARGING))

    assert result.status == "Unlocked"
    stop = await csms.wait_for_call("StopTransaction", timeout_s=20)
    assert (stop.payload["reason"], stop.payload["transactionId"]) == (
        "UnlockCommand", start.response["transactionId"])
    await status_since(csms, statuses, "Finishing")
    assert not await socket_locked(station)
    await sim(station, "unplug", str(CHARGING))
    await status_since(csms, statuses, "Available")

    await charging(csms, station, "UNLOCK-2")
    await sim(station, "fault", "io", "lock_stuck2")  # the bolt is jammed in
    statuses = len(csms.calls("StatusNotification"))
    result = await csms.send(CHARGE_POINT_ID, call.UnlockConnector(connector_id=CHARGING))
    assert result.status == "UnlockFailed"
    await csms.wait_for_call("StopTransaction", count=2, timeout_s=20)
    faulted = await status_since(csms, statuses, "Faulted")
    assert faulted.payload["errorCode"] == "ConnectorLockFailure"
    statuses = len(csms.calls("StatusNotification"))
    await sim(station, "clear", "io")  # free again: the switch reads open, the fault clears
    await status_since(csms, statuses, "Finishing")
    result = await csms.send(CHARGE_POINT_ID, call.UnlockConnector(connector_id=CHARGING))
    assert result.status == "Unlocked"
    await sim(station, "unplug", str(CHARGING))
    await status_since(csms, statuses, "Available")

    starts, statuses = len(csms.calls("StartTransaction")), len(csms.calls("StatusNotification"))
    await sim(station, "fault", "io", "lock_stuck2")  # now jammed open: the plug is only half in
    assert await csms.remote_start(CHARGE_POINT_ID, "UNLOCK-3", connector_id=CHARGING) == "Accepted"
    await status_since(csms, statuses, "Preparing")
    await sim(station, "plug", str(CHARGING), "--soc", "40")
    faulted = await status_since(csms, statuses, "Faulted")
    assert faulted.payload["errorCode"] == "ConnectorLockFailure"
    await sim(station, "clear", "io")
    await sim(station, "unplug", str(CHARGING))
    await status_since(csms, statuses, "Available")
    assert len(csms.calls("StartTransaction")) == starts, "no transaction began"

    for connector_id in (INOPERATIVE, 0, 9):
        result = await csms.send(CHARGE_POINT_ID, call.UnlockConnector(connector_id=connector_id))
        assert result.status == "NotSupported", connector_id
    assert len(csms.calls("StopTransaction")) == 2


async def status_since(csms: Csms, seen: int, status: str, timeout_s: float = 20.0) -> ReceivedCall:
    """The first StatusNotification `status` for the socket among those after the first `seen`."""
    async def sent() -> ReceivedCall | None:
        return next((c for c in csms.calls("StatusNotification")[seen:]
                     if c.payload["connectorId"] == CHARGING and c.payload["status"] == status), None)
    return await async_wait_until(sent, timeout_s=timeout_s, what=f"{status} for connector {CHARGING}")


async def socket_locked(station: Station) -> bool:
    """The socket's lock position switch, read over Modbus as a technician's tool would (the
    simulated module's layout is "bits": discrete inputs)."""
    config = load_config(station.config_path)
    io = config.io_module
    point = config.connector(CHARGING).lock_feedback
    assert point is not None
    hub = ModbusHub("tool:io", tool_bus(config.buses[io.bus]))
    try:
        levels = await hub.read_bits(io.inputs_device_id, FunctionCode.READ_DISCRETE_INPUTS, point.address, 1)
    finally:
        await hub.close()
    return point.active(levels[0])


async def _reported(csms: Csms, boot: ReceivedCall, connector_id: int) -> bool:
    return bool(statuses_after(csms, boot, connector_id))
