"""The one contract of the bus: every key, stream and command with its message type.

No other file spells a Redis name (STYLE habit 1). Names come from one grammar,
`{prefix}:{kind}:{name}`, built by `bus.names`; the prefix comes from BUS_PREFIX so two
stations (or two test runs) can share one Redis.

Writers: each key and stream names the one service that writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from bus import messages as m

T = TypeVar("T")
Req = TypeVar("Req", bound=m.Message)
Rep = TypeVar("Rep", bound=m.Message)


@dataclass(frozen=True)
class KeySpec(Generic[T]):
    """A latest-value key. `pattern` may hold `{param}` fields filled by `format()`."""

    pattern: str
    model: type[T]
    writer: str
    doc: str
    ttl_s: float | None = None

    def format(self, **params: Any) -> str:
        return self.pattern.format(**params)


@dataclass(frozen=True)
class StreamSpec(Generic[T]):
    """An ordered event stream, trimmed to about `maxlen` entries."""

    name: str
    adapter: TypeAdapter[T]
    writer: str
    doc: str
    maxlen: int = 10_000


@dataclass(frozen=True)
class CommandSpec(Generic[Req, Rep]):
    """A request/reply command served by one service through a consumer group."""

    name: str
    request: type[Req]
    reply: type[Rep]
    server: str
    doc: str
    timeout_s: float = 5.0


# ---- keys -----------------------------------------------------------------------------

HEARTBEAT = KeySpec(
    "heartbeat:{service}", m.Heartbeat, "each service",
    "Alive marker; expires after the TTL the service sets (chargepoint reads it).",
)
METER = KeySpec(
    "meter:{meter}", m.MeterReading, "counters",
    "Latest reading of a meter ('connector<N>' or 'station'); stale after 3 poll periods.",
)
CONNECTOR = KeySpec(
    "connector:{connector_id}", m.ConnectorState, "smartw",
    "Latest state of connector N.",
)
STATION = KeySpec("station", m.StationState, "smartw", "Station-wide state (connector 0).")
OCPP_LINK = KeySpec("ocpp:link", m.OcppLink, "ocpp16", "CSMS connection and registration state.")
OCPP_TRANSACTION = KeySpec(
    "ocpp:transaction:{connector_id}", m.OcppTransaction, "ocpp16",
    "OCPP transaction running on connector N; deleted when it ends.",
)

SESSION_RULES = KeySpec(
    "ocpp:session_rules", m.SessionRules, "ocpp16",
    "The OCPP configuration keys smartw obeys for every session (ConnectionTimeOut, "
    "StopTransactionOnEVSideDisconnect), written at start and after each change; smartw reads it "
    "every cycle and uses the message's defaults while it is missing (workers/smartw/ocpp_rules.py).",
)
OCPP_DEAUTHORIZED = KeySpec(
    "ocpp:deauthorized:{connector_id}", m.Deauthorized, "ocpp16",
    "The session on connector N whose idTag the CSMS refused while StopTransactionOnInvalidId is "
    "false, with its energy allowance (MaxEnergyOnInvalidId); deleted when the session ends. smartw "
    "withholds power once the allowance is delivered (SuspendedEVSE).",
)

DEVICE = KeySpec(
    "device:{device}", m.DeviceState, "the service polling the device (counters, smartw, rfid)",
    "Latest availability of one device; every change also goes to DEVICE_CHANGES.",
)

POWER_MODULE = KeySpec(
    "power_module:{module}", m.PowerModuleReading, "smartw",
    "Latest reading of a DC power module; expires 3 poll periods after the module stops answering.",
)

SUPERVISOR = KeySpec(
    "chargepoint:children", m.SupervisorState, "chargepoint",
    "Every service chargepoint runs: pid, status, restart count; refreshed every second.",
    ttl_s=3.0,
)

DIAG = KeySpec(
    "diag:report", m.DiagReport, "diag",
    "Latest self-test of every meter, the IO module and every supervised service; "
    "refreshed every few seconds, expires when diag stops.",
    ttl_s=10.0,
)

OCPP_LIMIT = KeySpec(
    "limit:ocpp:{connector_id}", m.ChargingLimit, "ocpp16",
    "The present value of connector N's OCPP composite schedule (0: the whole station), with its "
    "source and expiry; written with a TTL ending at that expiry, deleted when no profile applies. "
    "smartw obeys it (workers/smartw/limits.py).",
)
RESERVATIONS = KeySpec(
    "ocpp:reservations", m.Reservations, "ocpp16",
    "Every reservation in force (OCPP ReserveNow: connector or 0 for any, idTag, parentIdTag, "
    "expiry), written whole at each change with a TTL ending at the last expiry, deleted when none "
    "is left. smartw shows a held connector Reserved and refuses other idTags there "
    "(workers/smartw/reservations.py); each entry lapses at its own expiry.",
)
OPERATOR_LIMIT = KeySpec(
    "limit:operator:{connector_id}", m.ChargingLimit, "web (configurator, `manage.py limit`)",
    "The operator's limit on connector N (0: the whole station), source 'operator'; a limit "
    "with an expiry is written with a TTL ending at it. smartw obeys it (workers/smartw/limits.py).",
)

HMI_SETTINGS = KeySpec(
    "settings:hmi", m.HmiSettings, "web (configurator)",
    "The kiosk's operator settings: language, QR links, whether Stop needs the card. Written from "
    "the database (StationSetting) at start, on every change and every few seconds, so a Redis "
    "restart loses nothing.",
)

# ---- streams --------------------------------------------------------------------------

CARDS = StreamSpec(
    "events:cards", TypeAdapter(m.CardPresented), "rfid",
    "Every card presentation: one entry per hold (a card left on the reader is read once).",
    maxlen=1_000,
)
SESSIONS = StreamSpec(
    "events:sessions", TypeAdapter(m.SessionEvent), "smartw",
    "Session start/stop; ocpp16 turns them into transaction messages.",
)
CONNECTOR_CHANGES = StreamSpec(
    "events:connectors", TypeAdapter(m.ConnectorState), "smartw",
    "Every change of a connector's state (status, power, energy): the HMI's live feed.",
)
STATION_CHANGES = StreamSpec(
    "events:station", TypeAdapter(m.StationState), "smartw",
    "Every change of the station state (connector 0: e-stop, IO module), so even a short "
    "fault reaches the CSMS.",
    maxlen=1_000,
)
AUTH_RESULTS = StreamSpec(
    "events:auth", TypeAdapter(m.AuthResult), "smartw",
    "Outcome of each card presented, for the HMI.",
    maxlen=1_000,
)

DEVICE_CHANGES = StreamSpec(
    "events:devices", TypeAdapter(m.DeviceState), "the service polling the device",
    "A device became unavailable, faulted or recovered (fault events for smartw, diag, the HMI).",
    maxlen=1_000,
)
FILE_TRANSFERS = StreamSpec(
    "events:file_transfers", TypeAdapter(m.FileTransferProgress), "jobs",
    "Each step of a file transfer job (diagnostics/log upload, firmware download and install), "
    "named by its JobRecord id; ocpp16 sends the matching OCPP status notification.",
    maxlen=1_000,
)

# ---- commands -------------------------------------------------------------------------

START = CommandSpec(
    "smartw.start", m.StartRequest, m.CommandResult, "smartw",
    "Start a session on a connector (HMI button, card, RemoteStartTransaction). Longer than "
    "AUTHORIZE's timeout: a start with an idTag may authorize first.",
    timeout_s=15.0,
)
STOP = CommandSpec(
    "smartw.stop", m.StopRequest, m.CommandResult, "smartw",
    "Stop the session on a connector (HMI button, card, RemoteStopTransaction).",
)
AUTHORIZE = CommandSpec(
    "ocpp16.authorize", m.AuthorizeRequest, m.AuthorizeReply, "ocpp16",
    "Authorize an idTag with the CSMS (or the offline rules).",
    timeout_s=10.0,
)
SIM = CommandSpec(
    "sim.control", m.SimAction, m.CommandResult, "sim",
    "Drive the simulator: plug/unplug an EV, present a card, press e-stop, open the door, "
    "fault a device or take it offline.",
)

SIM_DEVICES = CommandSpec(
    "sim.devices", m.Empty, m.SimDeviceList, "sim",
    "Name every simulated device with its fault kinds (`manage.py sim list`).",
)

EXIT_FOR_UPDATE = CommandSpec(
    "chargepoint.exit_for_update", m.ExitForUpdateRequest, m.CommandResult, "chargepoint",
    "Stop every service and exit with the update kind's exit code (ops/start.sh installs).",
)

UPDATE_HOLD = CommandSpec(
    "smartw.update_hold", m.UpdateHoldRequest, m.UpdateHoldReply, "smartw",
    "Hold the station for an install (granted only while no connector charges; no new session "
    "starts until released or expired) or release it (the FOTA job asks before it installs).",
)
FLASH_CONTROLLER = CommandSpec(
    "smartw.flash_controller", m.FlashControllerRequest, m.FlashControllerReply, "smartw",
    "Flash one connector's charge controller over its bootloader (update_fw asks, one at a time); "
    "the connector is Unavailable while it runs. Callers give their own timeout (minutes).",
    timeout_s=600.0,
)
OCPP_UPDATE_FIRMWARE = CommandSpec(
    "ocpp16.update_firmware", m.UpdateFirmwareRequest, m.UpdateFirmwareReply, "ocpp16",
    "The configurator's \"Update from URL\": taken like a CSMS UpdateFirmware (recorded, downloaded "
    "and installed by the FIRMWARE_UPDATE job, reported to the CSMS); refused while the station "
    "takes signed updates only (a ManufacturerRootCertificate is installed) or for a bad location.",
)

RESTART = CommandSpec(
    "chargepoint.restart", m.RestartRequest, m.CommandResult, "chargepoint",
    "Stop every station service but the simulator and start them again (OCPP Reset); hard: run the "
    "configured reboot command in between. Answered at once, before the restart begins.",
    timeout_s=1.0,
)

AVAILABILITY = CommandSpec(
    "smartw.availability", m.ChangeAvailabilityRequest, m.AvailabilityReply, "smartw",
    "Set connector N (0: the station) Operative or Inoperative (OCPP ChangeAvailability, "
    "`manage.py station availability`); kept across restarts. Scheduled while a session runs there.",
)
FREE_MODE = CommandSpec(
    "smartw.free_mode", m.FreeModeRequest, m.CommandResult, "smartw",
    "Free mode on/off (`manage.py station free-mode`): a plugged EV starts at once with the "
    "configured idTag, no card, no Authorize; kept across restarts.",
)

UNLOCK = CommandSpec(
    "smartw.unlock", m.UnlockRequest, m.UnlockReply, "smartw",
    "Open connector N's cable lock (OCPP UnlockConnector): a session there is stopped first "
    "(UnlockCommand, ramp-down included), then the answer waits for the lock's position switch "
    "(workers/smartw/cable_lock.py); NotSupported for a fixed cable.",
    timeout_s=15.0,
)

OCPP_DATA_TRANSFER = CommandSpec(
    "ocpp16.data_transfer", m.DataTransferRequest, m.DataTransferReply, "ocpp16",
    "Send a DataTransfer.req to the CSMS and return its answer (`manage.py ocpp data-transfer`); "
    "longer than the default MessageTimeout so a slow CSMS's answer still comes back.",
    timeout_s=35.0,
)

SHUTDOWN = CommandSpec(
    "chargepoint.shutdown", m.ShutdownRequest, m.CommandResult, "chargepoint",
    "Stop every service and exit 0, as on SIGTERM (the configurator's Shutdown; ops/start.sh then "
    "exits). Answered at once, before the services stop.",
    timeout_s=1.0,
)
OCPP_CONFIGURE = CommandSpec(
    "ocpp16.configure", m.OcppConfigureRequest, m.OcppConfigureReply, "ocpp16",
    "Change the CSMS URL, charge point id, SecurityProfile or AuthorizationKey from the "
    "configurator; persisted by ocpp16 and applied by reconnecting, without a restart.",
)
SELF_TEST = CommandSpec(
    "diag.self_test", m.SelfTestRequest, m.DiagReport, "diag",
    "Run the self-test now (the whole station, or one subject) and return the report.",
)

ALL_KEYS: tuple[KeySpec[Any], ...] = (
    HEARTBEAT, METER, CONNECTOR, STATION, OCPP_LINK, OCPP_TRANSACTION, SUPERVISOR,
    DIAG, DEVICE, POWER_MODULE, OCPP_LIMIT, OPERATOR_LIMIT, RESERVATIONS, SESSION_RULES, OCPP_DEAUTHORIZED,
    HMI_SETTINGS,
)
ALL_STREAMS: tuple[StreamSpec[Any], ...] = (CARDS, SESSIONS, CONNECTOR_CHANGES, STATION_CHANGES,
                                            AUTH_RESULTS, DEVICE_CHANGES, FILE_TRANSFERS)
ALL_COMMANDS: tuple[CommandSpec[Any, Any], ...] = (START, STOP, AUTHORIZE, SIM, SIM_DEVICES,
                                                 EXIT_FOR_UPDATE, RESTART, AVAILABILITY, FREE_MODE, UNLOCK,
                                                 OCPP_DATA_TRANSFER, SHUTDOWN, OCPP_CONFIGURE, SELF_TEST,
                                                 OCPP_UPDATE_FIRMWARE)
