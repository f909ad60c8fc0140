"""The measurand table: units, locations, phases, formats, and bad readings left out (never sent)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from ocpp.v16.enums import ReadingContext

from bus import Bus, contract
from bus.enums import ConnectorStatus, Standard
from bus.messages import ConnectorState, MeterReading
from workers.ocpp16 import payloads
from workers.ocpp16.measurands import Readings, Selection, SkippedValues, UnknownItem, read, sampled_values

PERIODIC = ReadingContext.sample_periodic
THREE_PHASE = MeterReading(meter="connector2", energy_wh=5_000.4, power_w=11_000.25, voltage_v=230.1,
                           current_a=16.04, power_l1_w=3_700, power_l2_w=3_650, power_l3_w=3_650.25,
                           voltage_l2_v=231, voltage_l3_v=229.5, current_l2_a=15.9, current_l3_a=16.1)
DC = MeterReading(meter="connector1", energy_wh=90_000, power_w=48_000, voltage_v=400.0, current_a=120.0)


def values(items: list[str], readings: Readings, context: ReadingContext = PERIODIC) -> list[dict]:
    return sampled_values(items, readings, context, where="test", skips=SkippedValues())


def test_each_measurand_has_its_unit_location_and_raw_format() -> None:
    readings = Readings(meter=DC, soc=55.5)
    got = values(["Energy.Active.Import.Register", "Power.Active.Import", "Voltage", "Current.Import", "SoC"],
                 readings)
    assert got == [
        {"value": "90000", "context": "Sample.Periodic", "format": "Raw",
         "measurand": "Energy.Active.Import.Register", "location": "Outlet", "unit": "Wh"},
        {"value": "48000", "context": "Sample.Periodic", "format": "Raw", "measurand": "Power.Active.Import",
         "location": "Outlet", "unit": "W"},
        {"value": "400", "context": "Sample.Periodic", "format": "Raw", "measurand": "Voltage",
         "location": "Outlet", "unit": "V"},
        {"value": "120", "context": "Sample.Periodic", "format": "Raw", "measurand": "Current.Import",
         "location": "Outlet", "unit": "A"},
        {"value": "55.5", "context": "Sample.Periodic", "format": "Raw", "measurand": "SoC",
         "location": "EV", "unit": "Percent"},
    ]


def test_energy_is_the_integer_wh_register_and_an_event_register_wins() -> None:
    assert values(["Energy.Active.Import.Register"], Readings(meter=THREE_PHASE))[0]["value"] == "5000"
    exact = Readings(meter=THREE_PHASE, register_wh=4_999.6)  # the stop event's meterStop
    assert values(["Energy.Active.Import.Register"], exact)[0]["value"] == "5000"
    assert values(["Energy.Active.Import.Register"], Readings(register_wh=12.4))[0]["value"] == "12"


def test_an_ac_meter_gives_each_phase_it_has() -> None:
    readings = Readings(meter=THREE_PHASE, alternating=True)
    items = ["Current.Import.L1", "Current.Import.L2", "Current.Import.L3", "Voltage.L2-N", "Voltage.L3",
             "Power.Active.Import.L3"]
    got = [(v["measurand"], v["phase"], v["value"]) for v in values(items, readings)]
    assert got == [("Current.Import", "L1", "16.04"), ("Current.Import", "L2", "15.90"),
                   ("Current.Import", "L3", "16.10"), ("Voltage", "L2-N", "231"), ("Voltage", "L3", "229.5"),
                   ("Power.Active.Import", "L3", "3650.2")]


def test_phases_the_meter_lacks_are_left_out() -> None:
    single_phase = MeterReading(meter="connector2", energy_wh=1, power_w=2_000, voltage_v=230, current_a=8.7)
    assert [v["phase"] for v in values(["Current.Import.L1", "Current.Import.L2"],
                                       Readings(meter=single_phase, alternating=True))] == ["L1"]
    # a DC meter has no phases; N and line-to-line values are never on the bus; SoC has none
    assert values(["Voltage.L1", "Current.Import.L1"], Readings(meter=DC, alternating=False)) == []
    assert values(["Voltage.N", "Voltage.L1-L2", "SoC.L1", "Energy.Active.Import.Register.L1"],
                  Readings(meter=THREE_PHASE, soc=50, alternating=True)) == []


def test_unknown_and_sourceless_measurands_are_left_out_with_a_log_line(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="workers.ocpp16.measurands"):
        got = values(["Current.Offered", "Power.Offered", "Temperature", "Bogus", "SoC"], Readings(meter=DC))
    assert got == []  # SoC: smartw knows none
    assert "Current.Offered left out: this station has no source" in caplog.text
    assert "Bogus left out" in caplog.text and "SoC left out: no value on the bus" in caplog.text


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_reading_that_is_no_finite_number_is_left_out(bad: float, caplog) -> None:
    reading = MeterReading(meter="connector1", energy_wh=100, power_w=bad, voltage_v=bad, current_a=10)
    with caplog.at_level(logging.WARNING):
        got = values(["Energy.Active.Import.Register", "Power.Active.Import", "Voltage", "Current.Import"],
                     Readings(meter=reading))
    assert [v["measurand"] for v in got] == ["Energy.Active.Import.Register", "Current.Import"]
    assert "not a finite number" in caplog.text


def test_import_below_zero_is_reported_as_zero() -> None:
    idle = MeterReading(meter="connector1", energy_wh=100, power_w=-3.5, current_a=-0.01)
    got = values(["Power.Active.Import", "Current.Import"], Readings(meter=idle))
    assert [v["value"] for v in got] == ["0", "0"]


def test_a_value_missing_for_a_while_logs_once_then_again_after_it_came_back(caplog) -> None:
    skips = SkippedValues()
    with caplog.at_level(logging.WARNING, logger="workers.ocpp16.measurands"):
        for readings in (Readings(), Readings(), Readings(meter=DC), Readings()):
            sampled_values(["Power.Active.Import"], readings, PERIODIC, where="c1", skips=skips)
    assert caplog.text.count("c1: Power.Active.Import left out") == 2


def test_items_parse_as_measurand_with_an_optional_phase() -> None:
    assert Selection.parse("Energy.Active.Import.Register").phase is None
    assert str(Selection.parse("Voltage.L1-N").phase) == "L1-N"
    for bad in ("Voltage.L4", "Energy", "", "Voltage."):
        with pytest.raises(UnknownItem):
            Selection.parse(bad)


async def test_every_built_meter_value_passes_the_ocpp_schema() -> None:
    readings = Readings(meter=THREE_PHASE, soc=80, alternating=True)
    items = ["Energy.Active.Import.Register", "Power.Active.Import", "Voltage.L1", "Current.Import.L3", "SoC"]
    for context in ReadingContext:
        entry = payloads.meter_value(datetime(2024, 1, 1, 12, tzinfo=UTC), values(items, readings, context))
        await payloads.check("MeterValues", payloads.meter_values(2, 7, [entry]))
        assert entry["timestamp"] == "2024-01-01T12:00:00.000Z"


async def test_reading_the_bus_knows_ac_from_dc_and_the_station_meter(bus: Bus) -> None:
    await bus.set(contract.METER, DC, meter="connector1")
    await bus.set(contract.METER, THREE_PHASE.model_copy(update={"meter": "station"}), meter="station")
    await bus.set(contract.CONNECTOR, ConnectorState(connector_id=1, standard=Standard.CCS,
                                                     status=ConnectorStatus.CHARGING, soc=61), connector_id=1)
    await bus.set(contract.CONNECTOR, ConnectorState(connector_id=2, standard=Standard.TYPE2,
                                                     status=ConnectorStatus.AVAILABLE), connector_id=2)
    first, second, station = await read(bus, 1), await read(bus, 2), await read(bus, 0)
    assert (first.meter, first.soc, first.alternating) == (DC, 61, False)
    assert (second.meter, second.soc, second.alternating) == (None, None, True)
    assert station.meter is not None and station.alternating and station.soc is None


async def test_a_key_holding_garbage_counts_as_missing_and_nan_from_the_wire_is_left_out(
        bus: Bus, redis_client, caplog) -> None:
    redis_client.set(bus.names.key(contract.METER.format(meter="connector1")), '{"meter": "x"}')
    redis_client.set(bus.names.key(contract.METER.format(meter="connector2")),
                     '{"meter": "connector2", "energy_wh": 10.0, "power_w": NaN, "voltage_v": Infinity}')
    with caplog.at_level(logging.ERROR, logger="workers.ocpp16.measurands"):
        garbage, not_numbers = await read(bus, 1), await read(bus, 2)
    assert garbage.meter is None and "holds an invalid MeterReading" in caplog.text
    got = values(["Energy.Active.Import.Register", "Power.Active.Import", "Voltage"], not_numbers)
    assert [(v["measurand"], v["value"]) for v in got] == [("Energy.Active.Import.Register", "10")]
