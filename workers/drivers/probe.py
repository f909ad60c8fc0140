"""`manage.py hw probe`: what answers on the station's buses, what it is, and one reading of it.

What a technician runs when wiring a cabinet. For each Modbus bus it asks every device id in
the range (default 1..247) one short question; an id that answers at all (data or a Modbus
exception, not silence and not a TCP gateway's "no response") is present. Present ids are
identified by the meter register maps' probes (workers/drivers/meter_maps: several models may
share one layout and are all named), and compared with station.toml: every configured device
is read once with its own driver, so a wrong id, a wrong model or a swapped cable shows at
once. Mercury meters (their own protocol) and the CAN power modules are read at their
configured addresses. The ports are opened exclusively: stop the station first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from workers.common.device_status import DeviceStatusPublisher
from workers.common.station_config import ModbusRtuBus, ModbusTcpBus, StationConfig
from workers.drivers.controllers import ChargeController, build_controller
from workers.drivers.errors import DeviceError
from workers.drivers.imd import Imd, ImdSnapshot
from workers.drivers.infypower import InfypowerModules
from workers.drivers.io_module import IoModule, IoSnapshot
from workers.drivers.mercury import MercuryLine
from workers.drivers.meter import MeterSnapshot, identify
from workers.drivers.meter_factory import open_meter_driver
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.pn532 import Pn532
from workers.drivers.registers import FunctionCode
from workers.drivers.serial_port import SerialPort

log = logging.getLogger(__name__)

CAN_BUS = "can"
MODULE_POLLS = 3  # polls to wait for: capabilities, then output and status

GATEWAY_NO_RESPONSE = "answered Modbus exception 11"  # a TCP gateway: its RS485 device is silent
ALL_IDS = range(1, 248)


@dataclass
class ProbeRow:
    """One line of the table: a device found, expected, or both."""

    bus: str
    address: int
    configured: str = ""  # what station.toml says is there ('' = nothing)
    identified: list[str] = field(default_factory=list)  # meter models whose probe matches
    answered: bool = False
    reading: str = ""  # one reading of the configured device, or why it failed

    @property
    def ok(self) -> bool:
        """A configured device must answer and read; an unconfigured one is only reported."""
        return not self.configured or (self.answered and not self.reading.startswith("ERROR"))


Reader = Callable[[], Awaitable[str]]
Snapshot = TypeVar("Snapshot")


@dataclass
class Expected:
    label: str
    read: Reader


async def probe_station(config: StationConfig, *, bus_names: Iterable[str] | None = None,
                        ids: Iterable[int] = ALL_IDS) -> list[ProbeRow]:
    """Scan the Modbus buses (all, or `bus_names`) and read every configured device once. A
    silent id costs the bus's `timeout_s`: narrow `ids` on a slow RS485 line."""
    wanted = set(bus_names) if bus_names is not None else set(config.buses)
    unknown = wanted - set(config.buses)
    if unknown:
        raise ValueError(f"unknown bus(es) {sorted(unknown)} (station.toml has {sorted(config.buses)})")
    logging.getLogger("workers.drivers.modbus_hub").setLevel(logging.CRITICAL)  # absent ids are normal
    hubs = {name: ModbusHub(name, bus) for name, bus in config.buses.items()
            if name in wanted and isinstance(bus, ModbusTcpBus | ModbusRtuBus)}
    lines: dict[str, MercuryLine] = {}
    try:
        expected = _expected_devices(config, hubs, lines, wanted)
        rows = []
        for name, hub in hubs.items():
            rows += await _scan_bus(name, hub, sorted(set(ids) | _ids_on(expected, name)), expected)
        for (bus, address), device in sorted(expected.items()):
            if bus not in hubs:  # Mercury lines: read the configured meters only
                rows.append(await _read_expected(ProbeRow(bus, address, device.label), device, answered=None))
        if bus_names is None:
            rows += await _probe_power_modules(config)
            rows.append(await _probe_reader(config))
        return rows
    finally:
        for hub in hubs.values():
            await hub.close()
        for line in lines.values():
            line.close()


async def _scan_bus(name: str, hub: ModbusHub, ids: list[int],
                    expected: dict[tuple[str, int], Expected]) -> list[ProbeRow]:
    rows = []
    for address in ids:
        device = expected.get((name, address))
        answered = await _answers(hub, address)
        if not answered and device is None:
            continue
        row = ProbeRow(name, address, device.label if device else "", answered=answered)
        if answered:
            row.identified = await identify(hub, address)
        rows.append(await _read_expected(row, device, answered=answered) if device else row)
    return rows


async def _read_expected(row: ProbeRow, device: Expected, *, answered: bool | None) -> ProbeRow:
    try:
        row.reading = await device.read()
        row.answered = True
    except DeviceError as error:
        row.reading = f"ERROR {error.reason}"
        row.answered = bool(answered)
    return row


async def _answers(hub: ModbusHub, address: int) -> bool:
    """Any answer (data or an exception) means a device is there; silence means none."""
    for table in (FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS):
        try:
            await hub.read_registers(address, table, 0, 1)
            return True
        except DeviceError as error:
            if "answered Modbus exception" in error.reason and GATEWAY_NO_RESPONSE not in error.reason:
                return True
    return False


def _expected_devices(config: StationConfig, hubs: dict[str, ModbusHub], lines: dict[str, MercuryLine],
                      wanted: set[str]) -> dict[tuple[str, int], Expected]:
    expected: dict[tuple[str, int], Expected] = {}

    def add(bus: str, address: int, label: str, read: Reader) -> None:
        if bus in wanted:
            expected[(bus, address)] = Expected(label, read)

    meters = [(f"meter of connector {c.id} ({c.meter.model})", c.meter) for c in config.connectors]
    if config.station.meter is not None:
        meters.append((f"station meter ({config.station.meter.model})", config.station.meter))
    for label, meter in meters:
        if meter.bus in wanted:
            driver = open_meter_driver(meter, config.buses[meter.bus], hubs, lines)
            add(meter.bus, meter.device_id, label, _reader(driver.poll, _describe_meter))
    for connector in config.connectors:
        ref = connector.controller
        if ref.bus in hubs:
            add(ref.bus, ref.device_id, f"controller of connector {connector.id} ({ref.model})",
                _controller_reader(build_controller(hubs[ref.bus], connector)))
    io = config.io_module
    if io.bus in hubs:
        module = IoModule.from_config(config, hubs)
        add(io.bus, io.device_id, "IO module", _reader(module.poll, _describe_io))
    if config.imd is not None and config.imd.bus in hubs:
        imd = Imd.from_config(config.imd, hubs)
        add(config.imd.bus, config.imd.device_id, "insulation monitor", _reader(imd.poll, _describe_imd))
    return expected


def _controller_reader(controller: ChargeController) -> Reader:
    async def read() -> str:
        snapshot = await controller.poll()
        version = await controller.read_firmware_version()
        return f"state {snapshot.ev_state}, phase {snapshot.phase}, firmware {version}"
    return read


def _reader(poll: Callable[[], Awaitable[Snapshot]], describe: Callable[[Snapshot], str]) -> Reader:
    """One poll with the device's own driver, described for the table's reading column."""
    async def read() -> str:
        return describe(await poll())
    return read


def _describe_meter(snapshot: MeterSnapshot) -> str:
    volts = f", {snapshot.voltage_v:.1f} V" if snapshot.voltage_v is not None else ""
    return f"{snapshot.energy_wh / 1000:.3f} kWh, {snapshot.power_w:.0f} W{volts}"


def _describe_io(snapshot: IoSnapshot) -> str:
    door = "" if snapshot.door_open is None else f", door {'open' if snapshot.door_open else 'shut'}"
    return f"e-stop {'PRESSED' if snapshot.estop_pressed else 'released'}{door}"


def _describe_imd(snapshot: ImdSnapshot) -> str:
    ohms = "invalid" if snapshot.resistance_ohm is None else f"{snapshot.resistance_ohm / 1000:.0f} kOhm"
    return f"R_F {ohms}, alarm {snapshot.alarm}"


async def _probe_power_modules(config: StationConfig) -> list[ProbeRow]:
    """Each configured CAN module polled a few times (capabilities, output, status), then every
    module switched off again, the state the driver always leaves them in."""
    if config.power_modules is None:
        return []
    settings = config.power_modules
    modules = InfypowerModules.from_config(settings, DeviceStatusPublisher(None))
    addresses = settings.module_addresses()
    deadline = asyncio.get_running_loop().time() + settings.open_delay_s + MODULE_POLLS * (
        settings.poll_s + 3 * settings.answer_timeout_s)
    modules.start()
    try:
        while asyncio.get_running_loop().time() < deadline and not all(
                modules.reading(address) is not None or not modules.health(address).available
                for address in addresses):
            await asyncio.sleep(settings.poll_s / 2)
    finally:
        rows = [_module_row(modules, address) for address in addresses]
        await modules.stop()
    return rows


def _module_row(modules: InfypowerModules, address: int) -> ProbeRow:
    name = modules.names[address]
    row = ProbeRow(CAN_BUS, address, f"power module {name}")
    reading, capabilities = modules.reading(address), modules.capabilities(address)
    if reading is None:
        row.reading = f"ERROR {modules.health(address).reason or 'no answer'}"
        return row
    row.answered = True
    rated = (f", rated {capabilities.max_voltage_v:.0f} V / {capabilities.max_current_a:.0f} A"
             if capabilities is not None else "")
    state = "on" if reading.output_on else "off"
    fault = f", FAULT {reading.fault}" if reading.fault else ""
    row.reading = f"{reading.voltage_v:.1f} V, {reading.current_a:.1f} A, {state}{rated}{fault}"
    return row


async def _probe_reader(config: StationConfig) -> ProbeRow:
    """The card reader: a PN532 says which firmware it runs; an EM4100 reader only transmits,
    so opening its port is all that can be checked."""
    rfid = config.rfid
    row = ProbeRow(rfid.port, 0, f"card reader ({rfid.driver})")
    port = SerialPort(rfid.port, rfid.baudrate)
    try:
        port.open()
        row.answered = True
        if rfid.driver == "pn532":
            row.reading = str(await Pn532(port).initialise())
        else:
            row.reading = f"port opens at {rfid.baudrate} baud (an EM4100 reader only transmits)"
    except DeviceError as error:
        row.reading = f"ERROR {error.reason}"
    finally:
        port.close()
    return row


def _ids_on(expected: dict[tuple[str, int], Expected], bus: str) -> set[int]:
    return {address for (name, address) in expected if name == bus}


def format_table(rows: list[ProbeRow]) -> str:
    headers = ("bus", "id", "station.toml", "identified as", "reading")
    cells = [(row.bus, str(row.address), row.configured or "-", ", ".join(row.identified) or "-",
              row.reading or ("answers" if row.answered else "SILENT")) for row in rows]
    widths = [max(len(header), *(len(cell[i]) for cell in cells)) if cells else len(header)
              for i, header in enumerate(headers)]
    return "\n".join("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
                     for line in (headers, *cells))


def run_probe(config: StationConfig, *, bus_names: Iterable[str] | None = None,
              ids: Iterable[int] = ALL_IDS) -> list[ProbeRow]:
    return asyncio.run(probe_station(config, bus_names=bus_names, ids=ids))
