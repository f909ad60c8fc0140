"""UnlockConnector on a Type 2 socket with a cable lock, at the protocol level: ocpp16 as a real
process (its station.toml gives connector 2 a lock) against the test CSMS, smartw played by the
test on the real bus; and UnlockConnectorOnEVSideDisconnect, read-only false on a station whose
cables are all fixed (OCPP 1.6 errata 3.83), read-write and obeyed by smartw otherwise.

The fixed-cable side (NotSupported, the session finished first: TC_017_2, TC_018_2, TC_031) is in
tests/ocpp16/test_core_actions.py; the whole station's lock (TC_017_1, TC_018_1, TC_024, TC_030)
in tests/e2e/test_reset_unlock.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import ConfigurationStatus

from bus import Bus, contract
from bus.enums import ConnectorStatus, Standard, UnlockStatus
from bus.messages import ConnectorState, UnlockReply, UnlockRequest
from tests.ocpp16.conftest import CHARGE_POINT_ID, STATION_TOML
from tests.support.bus_servers import serving
from tests.support.waiting import async_wait_until
from workers.ocpp16 import config_keys as keys
from workers.ocpp16.config_keys import Access, ConfigurationStore
from workers.sim.csms import Csms

KEY = "UnlockConnectorOnEVSideDisconnect"
SOCKET_TOML = STATION_TOML.replace("contactor_coil = 1\n",
                                   "contactor_coil = 1\nlock_coil = 5\nlock_feedback = 12\n")


def test_the_key_is_read_only_false_with_fixed_cables_and_read_write_with_a_lock() -> None:
    fixed = ConfigurationStore(keys=keys.station_keys(cable_locks=False))
    key = fixed.find(KEY)
    assert key is not None and (key.access, fixed.get(key)) == (Access.READ, False)
    assert fixed.check_change(KEY, "true")[0] is ConfigurationStatus.rejected
    socket = ConfigurationStore(keys=keys.station_keys(cable_locks=True))
    key = socket.find(KEY)
    assert key is not None and (key.access, socket.get(key)) == (Access.READ_WRITE, True)
    assert socket.check_change(KEY, "false")[0] is ConfigurationStatus.accepted
    assert [k.name for k in keys.station_keys(cable_locks=False)] == [k.name for k in keys.ALL_KEYS]


@dataclass
class LockingSmartw:
    """smartw's UNLOCK command as ocpp16 sees it: the verdict the test sets, each request noted."""

    reply: UnlockStatus = UnlockStatus.UNLOCKED
    asked: list[UnlockRequest] = field(default_factory=list)

    async def unlock(self, request: UnlockRequest) -> UnlockReply:
        self.asked.append(request)
        return UnlockReply(status=self.reply)


@pytest.fixture
async def smartw(bus: Bus) -> AsyncIterator[LockingSmartw]:
    fake = LockingSmartw()
    for connector_id, standard in ((1, Standard.CCS), (2, Standard.TYPE2)):
        await bus.set(contract.CONNECTOR, ConnectorState(connector_id=connector_id, standard=standard,
                                                         status=ConnectorStatus.AVAILABLE),
                      connector_id=connector_id)
    async with serving("smartw", {contract.UNLOCK: fake.unlock}):
        yield fake


async def test_unlock_on_a_socket_answers_smartws_verdict_and_the_key_reaches_smartw(
        bus: Bus, csms: Csms, smartw: LockingSmartw, start_ocpp16, tmp_path: Path) -> None:
    """TC_017_1/TC_018_1 (Unlocked) and TC_030 (UnlockFailed) as smartw reports them; a fixed
    cable (CCS) and an unknown connector stay NotSupported without asking for an unlock."""
    (tmp_path / "station.toml").write_text(SOCKET_TOML)
    start_ocpp16(csms.url)
    await csms.wait_for_call("BootNotification", timeout_s=20)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)

    shown = await csms.send(CHARGE_POINT_ID, call.GetConfiguration(key=[KEY]))
    assert shown.configuration_key == [{"key": KEY, "readonly": False, "value": "true"}]
    changed = await csms.send(CHARGE_POINT_ID, call.ChangeConfiguration(key=KEY, value="false"))
    assert changed.status == "Accepted"

    async def published() -> bool:
        rules = await bus.get(contract.SESSION_RULES)
        return rules is not None and rules.unlock_on_ev_side_disconnect is False
    await async_wait_until(published, what="the key in smartw's session rules")

    assert (await csms.send(CHARGE_POINT_ID, call.UnlockConnector(connector_id=2))).status == "Unlocked"
    smartw.reply = UnlockStatus.UNLOCK_FAILED
    assert (await csms.send(CHARGE_POINT_ID, call.UnlockConnector(connector_id=2))).status == "UnlockFailed"
    for connector_id in (1, 9):
        result = await csms.send(CHARGE_POINT_ID, call.UnlockConnector(connector_id=connector_id))
        assert result.status == "NotSupported", connector_id
    assert smartw.asked == [UnlockRequest(connector_id=2)] * 2
