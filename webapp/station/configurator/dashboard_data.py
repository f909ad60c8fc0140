"""What the dashboard shows, read from the bus and formatted once, here.

Why formatted on the server: the page is rendered from these tables and its script only puts
the same tables' text into the cells every POLL_S, so a number is formatted in one place. Each
table has stable column keys and row keys (connector id, meter name, session id), which the
page carries as data-* attributes (the browser tests and the lead's end-to-end test use them).

Nothing stale is shown as fresh: a meter reading older than 3 poll periods says "stale", a
missing key says "no data", and while smartw's (or ocpp16's) heartbeat is gone a warning says
that the states shown are the last ones it wrote.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from bus import Bus, contract
from bus.enums import ConnectorStatus
from bus.messages import ConnectorState, MeterReading, OcppTransaction, utcnow
from webapp.station.bus_state import station_config
from webapp.station.configurator.station_now import BUS_DOWN, NO_DATA, StationNow, read_key, read_now
from webapp.station.hmi_messages import OcppView
from workers.common.station_config import StationConfig

POLL_S = 2.0  # the page asks for a new copy this often
STALE_POLLS = 3  # a meter reading older than this many of its poll periods is stale
DOOR_OPEN_INFO = "door_open"  # smartw's info key on every connector while the door is open
DASH = "-"
WATCHED_SERVICES = ("smartw", "ocpp16")  # whose states the dashboard shows (heartbeat checked)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Row(_Model):
    key: str
    cells: dict[str, str]
    warn: bool = False  # shown highlighted (fault, stale, offline)


class Table(_Model):
    name: str
    title: str
    columns: tuple[tuple[str, str], ...]  # (key, header)
    rows: tuple[Row, ...]

    @property
    def lines(self) -> list[tuple[Row, list[tuple[str, str]]]]:
        """Each row with its (column key, text) in column order, for the template."""
        return [(row, [(key, row.cells.get(key, DASH)) for key, _ in self.columns]) for row in self.rows]


class Dashboard(_Model):
    tables: tuple[Table, ...]
    warnings: tuple[str, ...]
    server_time: datetime


STATION_COLUMNS = (("status", "Status"), ("estop", "E-stop"), ("door", "Door"), ("io", "IO module"),
                   ("availability", "Availability"), ("free_mode", "Free mode"), ("csms", "CSMS link"),
                   ("registration", "Registration"), ("queued", "Queued messages"), ("csms_url", "CSMS URL"))
CONNECTOR_COLUMNS = (("id", "Connector"), ("standard", "Standard"), ("status", "Status"), ("info", "Info"),
                     ("availability", "Availability"), ("power", "Power, kW"), ("energy", "Energy, kWh"),
                     ("soc", "SoC, %"), ("id_tag", "idTag"), ("duration", "Duration"))
METER_COLUMNS = (("meter", "Meter"), ("power", "Power, kW"), ("energy", "Register, kWh"),
                 ("voltage", "Voltage, V"), ("current", "Current, A"), ("age", "Age"))
SESSION_COLUMNS = (("connector", "Connector"), ("id_tag", "idTag"), ("started", "Started (UTC)"),
                   ("duration", "Duration"), ("energy", "Energy, kWh"), ("transaction", "Transaction"))


async def read_dashboard(bus: Bus) -> Dashboard:
    config = station_config()
    now = utcnow()
    present = await read_now(bus)
    transactions = {cid: await read_key(bus, contract.OCPP_TRANSACTION, connector_id=cid)
                    for cid in present.connectors}
    periods = meter_periods(config)
    meters = {name: await read_key(bus, contract.METER, meter=name) for name, _ in periods}
    alive = {name: await read_key(bus, contract.HEARTBEAT, service=name) is not None
             for name in WATCHED_SERVICES}
    sessions = [_session_row(state, transactions[cid], now) for cid, state in present.connectors.items()
                if state is not None and state.session_id]
    tables = (
        Table(name="station", title="Station", columns=STATION_COLUMNS, rows=(_station_row(present),)),
        Table(name="connectors", title="Connectors", columns=CONNECTOR_COLUMNS,
              rows=tuple(_connector_row(c.id, c.standard, present.connectors[c.id], now)
                         for c in config.connectors)),
        Table(name="meters", title="Meters", columns=METER_COLUMNS,
              rows=tuple(_meter_row(name, meters[name], period, now) for name, period in periods)),
        Table(name="sessions", title="Active sessions", columns=SESSION_COLUMNS, rows=tuple(sessions)),
    )
    return Dashboard(tables=tables, warnings=_warnings(alive, present), server_time=now)


def unreachable() -> Dashboard:
    """What the page shows while Redis does not answer: no value at all, only the warning."""
    return Dashboard(tables=(), warnings=(BUS_DOWN,), server_time=utcnow())


def meter_periods(config: StationConfig) -> list[tuple[str, float]]:
    """(meter name on the bus, its poll period in s): one per connector, and the grid meter."""
    meters = [(f"connector{c.id}", c.meter.poll_s) for c in config.connectors]
    if config.station.meter is not None:
        meters.append(("station", config.station.meter.poll_s))
    return meters


def _warnings(alive: dict[str, bool], present: StationNow) -> tuple[str, ...]:
    warnings = []
    if not alive["smartw"]:
        warnings.append("smartw is not running: the station and connector states are the last it wrote"
                        if present.station is not None else "smartw is not running: no station state")
    if not alive["ocpp16"]:
        warnings.append("ocpp16 is not running: the CSMS link shown is the last it wrote"
                        if present.link is not None else "ocpp16 is not running: no CSMS link state")
    return tuple(warnings)


def _station_row(present: StationNow) -> Row:
    station, link = present.station, present.link
    cells = dict.fromkeys((key for key, _ in STATION_COLUMNS), DASH)
    cells.update(status=NO_DATA, csms=NO_DATA)
    if station is not None:
        door_open = any(s is not None and s.info == DOOR_OPEN_INFO for s in present.connectors.values())
        cells.update(status=station.status.value, estop="PRESSED" if station.estop else "released",
                     door=("unknown (IO module offline)" if not station.io_online
                           else "OPEN" if door_open else "closed"),
                     io="online" if station.io_online else "OFFLINE",
                     availability="Operative" if station.operative else "Inoperative",
                     free_mode="on" if station.free_mode else "off")
    if link is not None:
        view = OcppView.from_link(link)
        cells.update(csms="online" if view.connected else "OFFLINE", registration=view.registration,
                     queued=str(view.queued_messages), csms_url=view.csms_url or DASH)
    warn = station is None or station.estop or not station.io_online or link is None or not link.connected
    return Row(key="station", cells=cells, warn=warn)


def _connector_row(connector_id: int, standard: str, state: ConnectorState | None, now: datetime) -> Row:
    if state is None:
        cells = dict.fromkeys((key for key, _ in CONNECTOR_COLUMNS), DASH)
        cells.update(id=str(connector_id), standard=str(standard), status=NO_DATA)
        return Row(key=str(connector_id), cells=cells, warn=True)
    cells = {
        "id": str(connector_id), "standard": state.standard.value, "status": state.status.value,
        "info": state.info or DASH, "availability": "Operative" if state.operative else "Inoperative",
        "power": f"{state.power_w / 1000:.1f}", "energy": f"{state.session_energy_wh / 1000:.2f}",
        "soc": DASH if state.soc is None else f"{state.soc:.0f}",
        "id_tag": state.id_tag or DASH,
        "duration": _duration(now, state.session_started_at) if state.session_id else DASH,
    }
    return Row(key=str(connector_id), cells=cells, warn=state.status is ConnectorStatus.FAULTED)


def _meter_row(name: str, reading: MeterReading | None, poll_s: float, now: datetime) -> Row:
    if reading is None:
        cells = dict.fromkeys((key for key, _ in METER_COLUMNS), DASH)
        cells.update(meter=name, age=NO_DATA)
        return Row(key=name, cells=cells, warn=True)
    age_s = max(0.0, (now - reading.at).total_seconds())
    stale = age_s > STALE_POLLS * poll_s
    cells = {
        "meter": name, "power": f"{reading.power_w / 1000:.2f}", "energy": f"{reading.energy_wh / 1000:.2f}",
        "voltage": DASH if reading.voltage_v is None else f"{reading.voltage_v:.1f}",
        "current": DASH if reading.current_a is None else f"{reading.current_a:.1f}",
        "age": f"{age_s:.0f} s" + (" (stale)" if stale else ""),
    }
    return Row(key=name, cells=cells, warn=stale)


def _session_row(state: ConnectorState, transaction: OcppTransaction | None, now: datetime) -> Row:
    transaction_id = transaction.transaction_id if transaction else None
    started = state.session_started_at
    cells = {
        "connector": str(state.connector_id), "id_tag": state.id_tag or DASH,
        "started": f"{started:%Y-%m-%d %H:%M:%S}" if started else DASH,
        "duration": _duration(now, started), "energy": f"{state.session_energy_wh / 1000:.2f}",
        "transaction": DASH if transaction_id is None else str(transaction_id),
    }
    return Row(key=state.session_id or str(state.connector_id), cells=cells)


def _duration(now: datetime, started: datetime | None) -> str:
    if started is None:
        return DASH
    minutes, seconds = divmod(max(0, int((now - started).total_seconds())), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
