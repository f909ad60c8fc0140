"""The meter factory: the right driver per model and bus, CT ratios applied, wrong wiring refused."""

from __future__ import annotations

import pytest

from workers.common.station_config import ConfigError, MercuryBus, MeterConfig, ModbusTcpBus
from workers.drivers.meter import MeterDriver, MeterSnapshot, scale_by_ct
from workers.drivers.meter_factory import CtScaled, open_meter_driver
from workers.drivers.modbus_hub import ModbusHub

TCP = ModbusTcpBus(kind="modbus_tcp", host="127.0.0.1", port=1502)
MERCURY = MercuryBus(kind="mercury", port="/dev/null")


def test_a_ct_ratio_scales_energy_power_and_current_but_not_voltage() -> None:
    secondary = MeterSnapshot(energy_wh=1_000, power_w=500, voltage_v=230, current_a=2.2,
                              power_l1_w=170, frequency_hz=50, power_factor=0.99)
    primary = scale_by_ct(secondary, 60)
    assert (primary.energy_wh, primary.power_w, primary.current_a, primary.power_l1_w) == (
        60_000, 30_000, pytest.approx(132), 10_200)
    assert (primary.voltage_v, primary.frequency_hz, primary.power_factor) == (230, 50, 0.99)
    assert primary.energy_export_wh is None
    assert scale_by_ct(primary, 1 / 60).power_w == pytest.approx(500)


async def test_the_factory_wraps_ct_connected_meters_only() -> None:
    hubs = {"tcp": ModbusHub("tcp", TCP)}
    plain = open_meter_driver(MeterConfig(bus="tcp", device_id=1, model="sdm630"), TCP, hubs)
    assert isinstance(plain, MeterDriver)
    scaled = open_meter_driver(MeterConfig(bus="tcp", device_id=1, model="sdm630", ct_ratio=40), TCP, hubs)
    assert isinstance(scaled, CtScaled) and scaled.ratio == 40


@pytest.mark.parametrize(("meter", "bus", "message"), [
    (MeterConfig(bus="m", device_id=1, model="mercury234"), TCP, 'must be kind = "mercury"'),
    (MeterConfig(bus="m", device_id=1, model="sdm630"), MERCURY, "is a Mercury line"),
    (MeterConfig(bus="tcp", device_id=1, model="sdm630", password="111111"), TCP, "Mercury meters only"),
    (MeterConfig(bus="tcp", device_id=1, model="nope"), TCP, "no register map for meter model 'nope'"),
])
async def test_wrong_wiring_is_a_configuration_error(meter: MeterConfig, bus: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_meter_driver(meter, bus, {"tcp": ModbusHub("tcp", TCP)})  # type: ignore[arg-type]
