"""The billing register follows plausible steps only; refused steps are named."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.counters.plausibility import RESOLUTION_WH, EnergyAnomaly, EnergyGuard


def test_plausible_steps_are_billed_as_measured() -> None:
    guard = EnergyGuard(max_power_w=22_000)
    assert guard.judge(100_000, 0.0).billing_wh == 100_000
    step = guard.judge(100_006, 1.0)  # 22 kW for 1 s = 6.1 Wh
    assert (step.billing_wh, step.anomaly) == (100_006, None)


def test_a_register_going_back_is_flagged_and_billing_holds() -> None:
    guard = EnergyGuard(max_power_w=22_000)
    guard.judge(100_000, 0.0)
    back = guard.judge(50, 1.0)  # meter replaced
    assert back.anomaly is EnergyAnomaly.BACKWARDS and back.billing_wh == 100_000
    assert "went back by 99950.0 Wh" in back.detail
    assert guard.judge(55, 2.0).billing_wh == 100_005  # then it goes on from the new register


def test_a_jump_beyond_the_connector_is_flagged_and_not_billed() -> None:
    guard = EnergyGuard(max_power_w=150_000)
    guard.judge(1_000, 0.0)
    jump = guard.judge(1_000 + 10_000, 1.0)  # 10 kWh in one second
    assert jump.anomaly is EnergyAnomaly.JUMP and jump.billing_wh == 1_000
    assert "at 150.0 kW" in jump.detail
    assert guard.judge(11_040, 2.0) == guard.judge(11_040, 2.0)  # a repeated value is a zero step
    assert guard.judge(11_080, 3.0).billing_wh == 1_080


def test_the_offset_survives_a_restart() -> None:
    guard = EnergyGuard(max_power_w=22_000)
    guard.judge(100_000, 0.0)
    guard.judge(0, 1.0)
    restarted = EnergyGuard(max_power_w=22_000, offset_wh=guard.offset_wh)
    assert restarted.judge(10, 0.0).billing_wh == 100_010


def test_max_power_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max power"):
        EnergyGuard(max_power_w=0)


@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(0.0, 60.0)), min_size=1, max_size=40))
def test_billing_never_goes_back_nor_outruns_the_connector(steps: list[tuple[float, float]]) -> None:
    max_power_w = 50_000.0
    guard = EnergyGuard(max_power_w)
    raw, now = 1e6, 0.0
    previous = guard.judge(raw, now).billing_wh
    for change, elapsed in steps:
        raw, now = max(raw + change, 0.0), now + elapsed
        billed = guard.judge(raw, now).billing_wh
        assert billed >= previous - 1e-6
        assert billed - previous <= max_power_w * elapsed / 3600 * 1.5 + RESOLUTION_WH + 1e-6
        previous = billed


def test_the_station_meter_is_polled_with_the_grid_limit_and_readings_carry_the_anomaly() -> None:
    from workers.common.station_config import StationConfig
    from workers.counters.service import MeterPoller, plan_meters
    from workers.drivers.meter import MeterSnapshot

    meter = {"bus": "b", "device_id": 1, "model": "sdm630"}
    config = StationConfig.model_validate({
        "station": {"max_power_kw": 100, "meter": {**meter, "device_id": 9, "poll_s": 2}},
        "buses": {"b": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": 502}},
        "io_module": {"bus": "b", "device_id": 10, "estop_input": 0},
        "rfid": {"port": "/dev/null"},
        "connectors": [{"id": 1, "standard": "Type2", "max_power_kw": 22, "contactor_coil": 0,
                        "meter": meter, "controller": {"bus": "b", "device_id": 21}}],
    })
    plans = plan_meters(config)
    assert [(p.name, p.max_power_w, p.config.poll_s) for p in plans] == [
        ("connector1", 22_000, 1.0), ("station", 100_000, 2.0)]
    poller = MeterPoller(plans[0], driver=None)  # type: ignore[arg-type]  # reading() does no I/O
    first = poller.reading(MeterSnapshot(5_000, 0, 230, 0), 0.0)
    jumped = poller.reading(MeterSnapshot(900_000, 0, 230, 0), 1.0)
    assert (first.energy_wh, first.anomaly) == (5_000, None)
    assert (jumped.energy_wh, jumped.register_wh, jumped.anomaly) == (5_000, 900_000, "energy_jump")
