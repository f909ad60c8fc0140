"""The simulated EV's battery (pack voltage, CC then taper, SoC) and what the EV asks for."""

from __future__ import annotations

import pytest

from workers.sim.ev import Battery, SimulatedEv, current_share


def ev(soc: float = 50, target: float = 80, capacity: float = 60, max_kw: float = 100) -> SimulatedEv:
    return SimulatedEv(Battery(capacity_kwh=capacity, soc=soc), target_soc=target, max_power_w=max_kw * 1000)


@pytest.mark.parametrize(("soc", "share"), [
    (0, 1.0), (30, 1.0), (55, 1.0),  # constant current
    (77.5, 0.55), (100, 0.1),  # then linearly down to 10 % at full
])
def test_constant_current_then_taper(soc, share) -> None:
    assert current_share(soc) == pytest.approx(share)


def test_pack_voltage_follows_soc_and_current() -> None:
    assert Battery(60, soc=0).open_circuit_voltage_v() == pytest.approx(0.85 * 410)
    assert Battery(60, soc=100).open_circuit_voltage_v() == pytest.approx(410)
    half = Battery(60, soc=50)
    assert half.terminal_voltage_v(200) == pytest.approx(half.open_circuit_voltage_v() + 200 * 0.05)
    assert Battery(60, soc=99).terminal_voltage_v(500) == 410  # never above the pack's maximum


@pytest.mark.parametrize("power_w", [0.0, 1_000.0, 30_000.0, 150_000.0])
def test_the_current_for_a_power_accounts_for_the_voltage_it_raises(power_w) -> None:
    battery = Battery(60, soc=50)
    current = battery.current_for_power_a(power_w)
    assert battery.terminal_voltage_v(current) * current == pytest.approx(power_w)


def test_soc_rises_with_the_energy_stored() -> None:
    battery = Battery(capacity_kwh=60, soc=50)
    battery.absorb(60_000, 36.0)  # 0.6 kWh of 60 kWh = 1 %
    assert battery.soc == pytest.approx(51.0)
    battery.absorb(-5_000, 10.0)
    assert battery.soc == pytest.approx(51.0)
    full = Battery(capacity_kwh=0.001, soc=99.9)
    full.absorb(100_000, 10.0)
    assert full.soc == 100.0


def test_dc_demand_is_the_batterys_current_at_its_voltage() -> None:
    car = ev(soc=20, max_kw=100)
    assert car.dc_max_current_a == pytest.approx(100_000 / 410)
    assert car.dc_current_request_a() == pytest.approx(car.dc_max_current_a)
    pack_v = car.battery.terminal_voltage_v(car.dc_current_request_a())
    assert car.dc_target_voltage_v() == pytest.approx(pack_v)
    assert ev(soc=77.5, target=100).dc_current_request_a() == pytest.approx(0.55 * 100_000 / 410)


def test_ac_demand_is_the_on_board_chargers_current_per_phase() -> None:
    car = ev(soc=20, max_kw=11)
    assert car.ac_current_request_a(230.0) == pytest.approx(11_000 / (3 * 230))


def test_a_paused_or_full_ev_asks_for_nothing() -> None:
    paused = ev()
    paused.paused = True
    full = ev(soc=80, target=80)
    for car in (paused, full):
        assert not car.wants_energy
        assert car.dc_current_request_a() == 0 and car.ac_current_request_a(230) == 0
    assert full.full and not paused.full


@pytest.mark.parametrize("kwargs", [{"soc": 101}, {"target": -1}, {"capacity": 0}, {"max_kw": 0}])
def test_impossible_evs_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        ev(**kwargs)
