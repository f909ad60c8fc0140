"""The simulated EV's battery: what it asks for and what it takes."""

from __future__ import annotations

import pytest

from workers.drivers.controller import EvState
from workers.sim.ev import SimulatedEv


def ev(soc: float = 50, target: float = 80, capacity: float = 60, max_kw: float = 100) -> SimulatedEv:
    return SimulatedEv(soc=soc, target_soc=target, capacity_kwh=capacity, max_power_w=max_kw * 1000)


def test_ev_takes_the_smaller_of_offer_and_its_maximum() -> None:
    assert ev().charge(50_000, 1.0) == 50_000
    assert ev().charge(300_000, 1.0) == 100_000
    assert ev().charge(0, 1.0) == 0


def test_soc_rises_with_the_energy_taken() -> None:
    car = ev(soc=50, capacity=60)
    car.charge(60_000, 36.0)  # 0.6 kWh of 60 kWh = 1 %
    assert car.soc == pytest.approx(51.0)


def test_power_tapers_above_eighty_percent() -> None:
    assert ev(soc=90, target=100).acceptance_w() == pytest.approx(50_000)
    assert ev(soc=99.9, target=100).acceptance_w() == pytest.approx(5_000)  # floor


def test_at_target_the_ev_stops_asking_and_takes_nothing() -> None:
    car = ev(soc=79.99, target=80, capacity=1)
    assert car.state is EvState.C
    car.charge(100_000, 1.0)
    assert car.state is EvState.B
    assert car.acceptance_w() == 0
    assert car.charge(100_000, 1.0) == 0


@pytest.mark.parametrize("kwargs", [{"soc": 101}, {"target": -1}, {"capacity": 0}, {"max_kw": 0}])
def test_impossible_evs_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        ev(**kwargs)
