"""The contactor matrix in the simulator, over the real wires: link contactors switched by the
real IO module driver (Modbus TCP), power modules by the real Infypower driver (slcan over a
pty), the charge controller by the station protocol driver. A DC EV gets current only from
the modules whose link to its connector conducts, at what they deliver; a link opened under
load is counted (safety invariant 3, physical side); a welded link is reported like a welded
connector contactor; the hardware seam opens every link in its safe state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bus import Bus
from tests.sim.module_feed import ModuleFeed, module_feed
from tests.support.waiting import async_wait_until
from workers.common.power_config import link_key
from workers.common.redis_server import free_port
from workers.common.station_config import StationConfig
from workers.drivers.controllers import build_controller
from workers.drivers.controllers.interface import ChargeController, SessionPhase
from workers.drivers.io_module import ContactorFault, IoModule
from workers.drivers.meter import MeterDriver
from workers.drivers.modbus_hub import ModbusHub
from workers.sim.ev import Battery, SimulatedEv
from workers.sim.power_modules import PowerModuleBank, Ramp
from workers.sim.slcan_adapter import SimulatedSlcanAdapter
from workers.sim.station import SimStation
from workers.smartw.modbus_hardware import ModbusStationHardware

CCS, CHADEMO = 1, 3
LINK_COILS = {("pm1", CCS): 10, ("pm2", CCS): 11, ("pm1", CHADEMO): 12, ("pm2", CHADEMO): 13}
MODULE_KW = 30.0
TICK_S = 0.05  # the simulator's physics step here (0.25 s in the running simulator)
SESSION_SCALE = 0.01  # the EV's session runs 100x faster than nominal
OFFER_W = 50_000.0  # what the controller may deliver: more than one module, less than two


def station_config(port: int, channel: Path) -> StationConfig:
    bus = "tcp"

    def connector(cid: int, standard: str) -> dict[str, object]:
        return {"id": cid, "standard": standard, "max_power_kw": 100, "contactor_coil": cid - 1,
                "contactor_feedback": 7 + cid, "meter": {"bus": bus, "device_id": cid, "model": "acudc243"},
                "controller": {"bus": bus, "device_id": 20 + cid}}

    links = [{"connector": cid, "module": module, "coil": coil, "feedback": coil + 10}
             for (module, cid), coil in LINK_COILS.items()]
    return StationConfig.model_validate({
        "station": {"max_power_kw": 100},
        "buses": {bus: {"kind": "modbus_tcp", "host": "127.0.0.1", "port": port, "timeout_s": 0.5}},
        "io_module": {"bus": bus, "device_id": 10, "poll_s": 0.1, "inputs": {"estop": 0},
                      "feedback_timeout_s": 0.3},
        "rfid": {"port": "/dev/null"},
        "power_modules": {"channel": str(channel), "open_delay_s": 0, "count": 2, "rated_kw": MODULE_KW,
                          "poll_s": 0.05, "answer_timeout_s": 0.1, "resend_s": 0.15,
                          "silence_timeout_s": 0.6, "links": links},
        "connectors": [connector(CCS, "CCS"), connector(CHADEMO, "CHAdeMO")],
    })


@dataclass
class Rig:
    config: StationConfig
    station: SimStation
    bank: PowerModuleBank
    io: IoModule
    controller: ChargeController
    modules: ModuleFeed

    async def plug_and_offer(self) -> float:
        """A CCS EV at 30 % on connector 1, its contactor closed and the controller enabled;
        returns the voltage the EV asks for once it asks for its full current (the modules'
        voltage setpoint, as a station sets it: above the battery's, which rises as it fills)."""
        self.station.connectors[CCS].controller.time_scale = SESSION_SCALE
        ev = SimulatedEv(Battery(capacity_kwh=60.0, soc=30.0), target_soc=90.0, max_power_w=100_000.0)
        self.station.plug(CCS, ev)
        await self.io.set_contactor(CCS, True)
        await self.controller.set_output(True, OFFER_W)

        async def asking() -> float | None:
            snapshot = await self.controller.poll()
            asked_a, most_a = snapshot.demand.target_current_a or 0.0, snapshot.demand.max_current_a or 0.0
            full = snapshot.phase is SessionPhase.CHARGING and asked_a >= most_a - 1 > 0
            return snapshot.demand.target_voltage_v if full else None

        return await async_wait_until(asking, what="the EV asking for its full current")

    async def ev_current_a(self) -> float:
        return (await self.controller.poll()).present.current_a or 0.0

    def battery(self) -> Battery:
        ev = self.station.connectors[CCS].ev
        assert ev is not None
        return ev.battery

    def battery_voltage_v(self) -> float:
        return self.battery().open_circuit_voltage_v()

    async def meter_power_w(self) -> float:
        meter = self.config.connector(CCS).meter
        return (await MeterDriver(self.io.hub, meter.device_id, meter.model).poll()).power_w

    async def ev_current_settles_at(self, expected_a: float) -> None:
        """Wait until the EV's current (as its controller reports it) settles at `expected_a`."""
        async def settled() -> bool:
            return abs(await self.ev_current_a() - expected_a) <= 0.2

        await async_wait_until(settled, what=f"the EV's current at {expected_a:.1f} A")

    async def module_current_settles_at(self, module: str, expected_a: float) -> None:
        async def settled() -> bool:
            current = self.modules.current_a(module)
            return current is not None and abs(current - expected_a) <= 0.2

        await async_wait_until(settled, what=f"{module}'s current at {expected_a:.1f} A over CAN")


async def _physics(station: SimStation) -> None:
    while True:
        await asyncio.sleep(TICK_S)
        await station.tick(TICK_S)


@pytest.fixture
async def rig(bus: Bus, tmp_path: Path) -> AsyncIterator[Rig]:
    config = station_config(free_port(), tmp_path / "ttyCAN0")
    assert config.power_modules is not None
    bank = PowerModuleBank.from_config(config.power_modules, ramp=Ramp(voltage_v_per_s=2000.0,
                                                                       current_a_per_s=300.0))
    adapter = SimulatedSlcanAdapter(Path(config.power_modules.channel), bank)
    station = SimStation(config, tmp_path / "meters.json", bank)
    adapter.open()
    bank.start()
    await station.start()
    physics = asyncio.create_task(_physics(station))
    hub = ModbusHub("tcp", config.buses["tcp"])
    try:
        async with module_feed(config.power_modules, bus) as modules:
            yield Rig(config, station, bank, IoModule.from_config(config, {"tcp": hub}),
                      build_controller(hub, config.connector(CCS)), modules)
    finally:
        physics.cancel()
        await asyncio.gather(physics, return_exceptions=True)
        await hub.close()
        await bank.stop()
        adapter.close()
        await station.stop()


async def test_the_ev_charges_at_what_its_linked_modules_deliver_and_an_unlinked_module_gives_nothing(
        rig: Rig) -> None:
    voltage = await rig.plug_and_offer()
    await rig.modules.switch_on(["pm1", "pm2"], voltage_v=voltage, current_a=100.0)
    await rig.io.set_link("pm1", CCS, True)

    one_module_a = MODULE_KW * 1000 / rig.battery_voltage_v()  # pm1 at its power limit; pm2's link is open
    await rig.ev_current_settles_at(one_module_a)
    await rig.module_current_settles_at("pm1", one_module_a)
    await rig.module_current_settles_at("pm2", 0.0)

    await rig.io.set_link("pm2", CCS, True)  # now the offer limits: both modules share it
    offered_a = rig.battery().current_for_power_a(OFFER_W)
    await rig.ev_current_settles_at(offered_a)
    await rig.module_current_settles_at("pm1", offered_a / 2)
    await rig.module_current_settles_at("pm2", offered_a / 2)
    assert await rig.meter_power_w() == pytest.approx(OFFER_W, rel=0.01), "the meter shows it too"


async def test_a_module_below_the_battery_voltage_delivers_nothing(rig: Rig) -> None:
    await rig.plug_and_offer()
    await rig.modules.switch_on(["pm1"], voltage_v=rig.battery_voltage_v() - 20, current_a=100.0)
    await rig.io.set_link("pm1", CCS, True)
    await async_wait_until(lambda: _link_closed(rig, "pm1", CCS), what="the link's feedback")
    for _ in range(5):  # several physics steps: nothing flows
        await rig.station.tick(TICK_S)
        assert await rig.ev_current_a() == 0.0


async def test_opening_a_link_under_load_cuts_the_ev_and_is_counted(rig: Rig, caplog) -> None:
    voltage = await rig.plug_and_offer()
    await rig.modules.switch_on(["pm1"], voltage_v=voltage, current_a=60.0)
    await rig.io.set_link("pm1", CCS, True)
    await rig.ev_current_settles_at(60.0)

    with caplog.at_level(logging.WARNING, logger="workers.sim.dc_supply"):
        await rig.io.set_link("pm1", CCS, False)
        await rig.ev_current_settles_at(0.0)
    await rig.module_current_settles_at("pm1", 0.0)
    assert rig.station.links_opened_under_load == 1
    assert any(f"link {link_key('pm1', CCS)} opened under 60 A" in r.getMessage() for r in caplog.records)


async def test_ramped_down_first_a_link_opens_without_counting(rig: Rig) -> None:
    voltage = await rig.plug_and_offer()
    await rig.modules.switch_on(["pm1"], voltage_v=voltage, current_a=60.0)
    await rig.io.set_link("pm1", CCS, True)
    await rig.ev_current_settles_at(60.0)
    await rig.modules.switch_on(["pm1"], voltage_v=voltage, current_a=0.0)
    await rig.module_current_settles_at("pm1", 0.0)
    await rig.io.set_link("pm1", CCS, False)
    await async_wait_until(lambda: _link_open(rig, "pm1", CCS), what="the link's feedback")
    await rig.station.tick(TICK_S)
    assert rig.station.links_opened_under_load == 0


@pytest.mark.parametrize("cut", ["offline", "overtemp", "silence"])
async def test_a_faulted_offline_or_silenced_module_delivers_nothing(rig: Rig, cut: str) -> None:
    voltage = await rig.plug_and_offer()
    await rig.modules.switch_on(["pm1"], voltage_v=voltage, current_a=60.0)
    await rig.io.set_link("pm1", CCS, True)
    await rig.ev_current_settles_at(60.0)
    pm1 = rig.bank.module("pm1")
    if cut == "offline":
        pm1.set_online(False)
    elif cut == "overtemp":
        pm1.inject_fault("overtemp")
    else:
        await rig.modules.driver.link.stop()  # the CAN adapter gone: no frame for the silence timeout
    await async_wait_until(lambda: _no_current(rig), timeout_s=3.0, what="the EV's current to stop")
    assert not pm1.delivering


async def test_the_estop_opens_the_links_without_counting_them_as_switched_under_load(rig: Rig) -> None:
    voltage = await rig.plug_and_offer()
    await rig.modules.switch_on(["pm1"], voltage_v=voltage, current_a=60.0)
    await rig.io.set_link("pm1", CCS, True)
    await rig.ev_current_settles_at(60.0)
    await rig.station.set_estop(True)
    await rig.ev_current_settles_at(0.0)
    assert not rig.station.io.link_conducts("pm1", CCS)
    assert rig.station.links_opened_under_load == 0


async def test_a_welded_link_is_reported_by_the_io_driver(rig: Rig) -> None:
    rig.station.io.inject_fault("weld_pm2_3")
    await rig.io.set_link("pm2", CHADEMO, True)
    await async_wait_until(lambda: _link_closed(rig, "pm2", CHADEMO), what="the link to close")
    await rig.io.set_link("pm2", CHADEMO, False)

    async def welded() -> bool:
        return (await rig.io.poll()).contactor_faults.get(link_key("pm2", CHADEMO)) is ContactorFault.WELDED

    await async_wait_until(welded, what="the welded link reported")
    snapshot = await rig.io.poll()
    assert not snapshot.contactors_closed[link_key("pm2", CHADEMO)]
    assert snapshot.contactor_feedback[link_key("pm2", CHADEMO)]
    assert link_key("pm1", CHADEMO) not in snapshot.contactor_faults


async def test_the_hardware_seam_switches_links_and_its_safe_state_opens_them_all(rig: Rig) -> None:
    hardware = ModbusStationHardware(rig.config)
    try:
        for module, cid in LINK_COILS:
            await hardware.set_link(module, cid, True)
        await hardware.set_contactor(CCS, True)
        snapshot = await hardware.read_io()
        assert all(snapshot.contactors_closed[link_key(module, cid)] for module, cid in LINK_COILS)
        with pytest.raises(KeyError):
            await hardware.set_link("pm3", CCS, True)  # not wired in station.toml

        await hardware.open_all(emergency=True)
        snapshot = await hardware.read_io()
        assert not any(snapshot.contactors_closed.values()), "every contactor and link is open"
        assert snapshot.outputs_as_commanded
    finally:
        await hardware.close()


async def _link_closed(rig: Rig, module: str, connector_id: int) -> bool:
    return bool((await rig.io.poll()).contactor_feedback.get(link_key(module, connector_id)))


async def _link_open(rig: Rig, module: str, connector_id: int) -> bool:
    return not await _link_closed(rig, module, connector_id)


async def _no_current(rig: Rig) -> bool:
    return await rig.ev_current_a() == 0.0

