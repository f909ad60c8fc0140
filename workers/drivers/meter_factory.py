"""One way to get a meter driver for any station.toml meter, Modbus map or Mercury.

counters (and `hw` tools) ask for a driver by the meter's config and bus; what they get has
`async poll() -> MeterSnapshot`, whatever wire it speaks. Modbus meters share their bus's
`ModbusHub`; Mercury meters on one serial line share one `MercuryLine` when the caller passes
a `lines` dict (it then closes them: `line.close()`). A model on the wrong kind of bus is a
configuration error found at start-up, not at the first poll.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from workers.common.station_config import BusConfig, ConfigError, MercuryBus, MeterConfig
from workers.drivers.mercury import MercuryLine, MercuryMeter, parse_password
from workers.drivers.meter import MeterDriver, MeterSnapshot, scale_by_ct
from workers.drivers.meter_maps import UnknownMeterModel
from workers.drivers.modbus_hub import ModbusHub

MERCURY_MODELS = frozenset({"mercury230", "mercury234"})


class MeterReader(Protocol):
    async def poll(self) -> MeterSnapshot:
        """One reading; DeviceError when the meter cannot give a usable one."""
        ...


@dataclass(frozen=True)
class CtScaled:
    """A meter behind current transformers that shows secondary values (`ct_ratio`)."""

    meter: MeterReader
    ratio: float

    async def poll(self) -> MeterSnapshot:
        return scale_by_ct(await self.meter.poll(), self.ratio)


def open_meter_driver(meter: MeterConfig, bus: BusConfig, hubs: Mapping[str, ModbusHub],
                      lines: dict[str, MercuryLine] | None = None) -> MeterReader:
    """The driver for `meter` on `bus` (station.toml `buses[meter.bus]`); ConfigError if the
    model does not fit the bus or is unknown. Readings are primary values (`ct_ratio` applied)."""
    driver = _wire_driver(meter, bus, hubs, lines)
    return driver if meter.ct_ratio == 1 else CtScaled(driver, meter.ct_ratio)


def _wire_driver(meter: MeterConfig, bus: BusConfig, hubs: Mapping[str, ModbusHub],
                 lines: dict[str, MercuryLine] | None) -> MeterReader:
    if meter.model in MERCURY_MODELS:
        if not isinstance(bus, MercuryBus):
            raise ConfigError(f"meter model {meter.model} speaks Mercury's protocol: bus {meter.bus!r} "
                              f"must be kind = \"mercury\", not {bus.kind!r}")
        line = _line(meter.bus, bus, lines)
        return MercuryMeter(line, meter.device_id, password=parse_password(meter.password))
    if isinstance(bus, MercuryBus):
        raise ConfigError(f"bus {meter.bus!r} is a Mercury line: its meters are "
                          f"{' or '.join(sorted(MERCURY_MODELS))}, not {meter.model!r}")
    if meter.password is not None:
        raise ConfigError(f"meter on bus {meter.bus!r} id {meter.device_id}: password applies to "
                          "Mercury meters only")
    try:
        return MeterDriver(hubs[meter.bus], meter.device_id, meter.model)
    except UnknownMeterModel as error:
        raise ConfigError(str(error.args[0])) from error


def _line(name: str, bus: MercuryBus, lines: dict[str, MercuryLine] | None) -> MercuryLine:
    if lines is not None and name in lines:
        return lines[name]
    line = MercuryLine(name, bus.port, baudrate=bus.baudrate, timeout_s=bus.timeout_s)
    if lines is not None:
        lines[name] = line
    return line
