"""Which measurands this station reports, and where on the bus each value comes from.

One table (`QUANTITIES`, STYLE habit 6): measurand -> unit, location, how to read the value
from the bus (counters' MeterReading, smartw's ConnectorState) and, for AC meters, which key
holds each phase. Every MeterValues and StopTransaction.transactionData value is built here,
so the rules hold everywhere (ocpp16.md §2.6, §8):

- energy is the meter's lifetime billing register in integer Wh (never kWh, never a counter
  from 0); the start/stop register of a session event wins over the bus (exactly meterStart/
  meterStop);
- location `Outlet`, except SoC (`EV`); format `Raw`; the context the caller gives;
- a configured phase suffix (`Voltage.L1`) gives that phase's value with `phase` set, only
  when the meter has it: an AC meter's L1..L3 (for voltage also L1-N..L3-N), nothing for a DC
  meter or a connector whose kind is unknown; N and line-to-line values are never on the bus;
- Current.Offered and Power.Offered are not on the bus (smartw does not publish what it
  offers), so they are skipped like any value that is missing;
- a missing reading, a None field or a NaN/inf value leaves that one value out with a log line
  (never an invalid or made-up value); import quantities below 0 (meter noise at idle, export)
  are reported as 0.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ocpp.v16.enums import Location, Measurand, Phase, ReadingContext, UnitOfMeasure, ValueFormat

from bus import Bus, contract
from bus.enums import Standard
from bus.messages import ConnectorState, MeterReading

log = logging.getLogger(__name__)

Payload = dict[str, Any]
STATION_METER = "station"  # counters' name of the grid-connection meter (OCPP connector 0)


def meter_name(connector_id: int) -> str:
    """counters' meter name of a connector (0: the station meter)."""
    return STATION_METER if connector_id == 0 else f"connector{connector_id}"


@dataclass(frozen=True)
class Readings:
    """What the bus holds for one connector (0: the station) at one moment."""

    meter: MeterReading | None = None
    soc: float | None = None  # %, from smartw (the EV's battery)
    alternating: bool = False  # an AC meter: phases exist; DC or unknown: none
    register_wh: float | None = None  # a session event's exact register; wins over the meter's

    @property
    def energy_wh(self) -> float | None:
        if self.register_wh is not None:
            return self.register_wh
        return None if self.meter is None else self.meter.energy_wh


Reader = Callable[[Readings], float | None]


def _from_meter(read: Callable[[MeterReading], float | None]) -> Reader:
    return lambda readings: None if readings.meter is None else read(readings.meter)


@dataclass(frozen=True)
class Quantity:
    """One measurand this station can report."""

    measurand: Measurand
    unit: UnitOfMeasure
    read: Reader  # the value without a phase
    phases: Mapping[Phase, Reader] = field(default_factory=dict)  # AC meters only
    location: Location = Location.outlet
    decimals: int = 1  # 0: an integer
    import_only: bool = False  # a negative value is reported as 0


_L1, _L2, _L3 = Phase.l1, Phase.l2, Phase.l3
_VOLTAGE_L1 = _from_meter(lambda m: m.voltage_v)
_VOLTAGE_L2 = _from_meter(lambda m: m.voltage_l2_v)
_VOLTAGE_L3 = _from_meter(lambda m: m.voltage_l3_v)

QUANTITIES: tuple[Quantity, ...] = (
    Quantity(Measurand.energy_active_import_register, UnitOfMeasure.wh, lambda r: r.energy_wh, decimals=0),
    Quantity(Measurand.power_active_import, UnitOfMeasure.w, _from_meter(lambda m: m.power_w),
             {_L1: _from_meter(lambda m: m.power_l1_w), _L2: _from_meter(lambda m: m.power_l2_w),
              _L3: _from_meter(lambda m: m.power_l3_w)}, import_only=True),
    Quantity(Measurand.voltage, UnitOfMeasure.v, _VOLTAGE_L1,
             {_L1: _VOLTAGE_L1, _L2: _VOLTAGE_L2, _L3: _VOLTAGE_L3,
              Phase.l1_n: _VOLTAGE_L1, Phase.l2_n: _VOLTAGE_L2, Phase.l3_n: _VOLTAGE_L3}),
    Quantity(Measurand.current_import, UnitOfMeasure.a, _from_meter(lambda m: m.current_a),
             {_L1: _from_meter(lambda m: m.current_a), _L2: _from_meter(lambda m: m.current_l2_a),
              _L3: _from_meter(lambda m: m.current_l3_a)}, decimals=2, import_only=True),
    Quantity(Measurand.soc, UnitOfMeasure.percent, lambda r: r.soc, location=Location.ev),
)
BY_MEASURAND: Mapping[str, Quantity] = {quantity.measurand: quantity for quantity in QUANTITIES}
READABLE = frozenset(BY_MEASURAND)  # what ChangeConfiguration should accept in the four CSL keys


_MEASURANDS = frozenset(str(measurand) for measurand in Measurand)
_PHASES = frozenset(str(phase) for phase in Phase)


class UnknownItem(ValueError):
    """A configured item that is no OCPP 1.6 measurand (with an optional phase)."""


@dataclass(frozen=True)
class Selection:
    """One item of a measurand list: `Voltage` or `Voltage.L1`."""

    measurand: Measurand
    phase: Phase | None = None

    @classmethod
    def parse(cls, item: str) -> Selection:
        if item in _MEASURANDS:
            return cls(Measurand(item))
        name, _, suffix = item.rpartition(".")
        if name in _MEASURANDS and suffix in _PHASES:
            return cls(Measurand(name), Phase(suffix))
        raise UnknownItem(f"{item!r} is not a measurand[.phase]")


class SkippedValues:
    """Logs why a configured value was left out: at WARNING when it starts, at DEBUG while it
    goes on (a meter that is down would otherwise log every interval), again once it is back."""

    def __init__(self) -> None:
        self._going_on: set[tuple[str, str]] = set()

    def skipped(self, where: str, item: str, why: str) -> None:
        level = logging.DEBUG if (where, item) in self._going_on else logging.WARNING
        self._going_on.add((where, item))
        log.log(level, "%s: %s left out: %s", where, item, why)

    def taken(self, where: str, item: str) -> None:
        self._going_on.discard((where, item))


def _text(value: float, decimals: int) -> str:
    if decimals == 0:
        return str(round(value))
    return f"{value:.0f}" if value.is_integer() else f"{value:.{decimals}f}"


def _value(selection: Selection, readings: Readings) -> tuple[Quantity | None, float | None, str]:
    """(quantity, value, why it is missing)."""
    quantity = BY_MEASURAND.get(selection.measurand)
    if quantity is None:
        return None, None, "this station has no source for it on the bus"
    if selection.phase is None:
        return quantity, quantity.read(readings), "no value on the bus"
    reader = quantity.phases.get(selection.phase) if readings.alternating else None
    if reader is None:
        return quantity, None, "the meter has no such phase"
    return quantity, reader(readings), "no value for that phase on the bus"


def sampled_value(item: str, readings: Readings, context: ReadingContext) -> tuple[Payload | None, str]:
    """One SampledValue (wire JSON) for a configured item, or None and why it is left out."""
    try:
        selection = Selection.parse(item)
    except UnknownItem as error:
        return None, str(error)
    quantity, value, missing = _value(selection, readings)
    if quantity is None or value is None:
        return None, missing
    if not math.isfinite(value):
        return None, f"the reading is {value!r}, not a finite number"
    if quantity.import_only:
        value = max(value, 0.0)
    sampled: Payload = {"value": _text(float(value), quantity.decimals), "context": str(context),
                        "format": str(ValueFormat.raw), "measurand": str(quantity.measurand)}
    if selection.phase is not None:
        sampled["phase"] = str(selection.phase)
    sampled["location"] = str(quantity.location)
    sampled["unit"] = str(quantity.unit)
    return sampled, ""


def sampled_values(items: Sequence[str], readings: Readings, context: ReadingContext, *,
                   where: str, skips: SkippedValues) -> list[Payload]:
    """The SampledValues of every item that has a value now, in the configured order."""
    values: list[Payload] = []
    for item in items:
        sampled, why = sampled_value(item, readings, context)
        if sampled is None:
            skips.skipped(where, item, why)
        else:
            skips.taken(where, item)
            values.append(sampled)
    return values


async def read(bus: Bus, connector_id: int) -> Readings:
    """Connector N's meter reading, its EV's SoC and whether it is AC (connector 0: the station
    meter at the grid connection, taken as AC). A key that holds an invalid message (e.g. a
    value that is not a number) counts as missing, with a log line."""
    if connector_id == 0:
        meter = await _read_key(bus, contract.METER, meter=STATION_METER)
        return Readings(meter=meter, alternating=True)
    meter = await _read_key(bus, contract.METER, meter=meter_name(connector_id))
    state: ConnectorState | None = await _read_key(bus, contract.CONNECTOR, connector_id=connector_id)
    return Readings(meter=meter, soc=None if state is None else state.soc,
                    alternating=state is not None and state.standard is Standard.TYPE2)


async def _read_key(bus: Bus, spec: contract.KeySpec[Any], **params: Any) -> Any:
    (found,) = await bus.get_many([(spec, params)])
    if found.error is not None:
        log.error("bus key %s holds an invalid %s (%s); taken as missing", found.name, spec.model.__name__,
                  found.error.errors()[0].get("msg", found.error))
    return found.value
