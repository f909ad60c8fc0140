"""Typed payloads carried by the bus: one module, one model per message (STYLE habit 4).

Each field says its meaning and unit. Models are frozen so a snapshot read from Redis
cannot be mutated by accident; services build a new one with `model_copy(update=...)`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from bus.enums import (
    AuthorizationStatus,
    CheckState,
    ChildStatus,
    ConnectorErrorCode,
    ConnectorStatus,
    Standard,
    StartSource,
    StopReason,
    UnlockStatus,
    UpdateKind,
)


def utcnow() -> datetime:
    """Aware UTC timestamp: every time on the bus is UTC (OCPP wants `Z` times)."""
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every bus payload: frozen, unknown fields rejected so typos fail loudly."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# ---- state (keys) -------------------------------------------------------------------


class Heartbeat(Message):
    """A service is alive; the key expires when the service stops refreshing it."""

    service: str
    pid: int = Field(description="OS process id, so chargepoint can tell an old child's beat")
    ready: bool = Field(default=True, description="the service serves what it provides "
                        "(the simulator: its devices listen); False while it is still starting")
    at: datetime = Field(default_factory=utcnow)


class MeterReading(Message):
    """Latest reading of one energy meter (counters writes it every poll)."""

    meter: str = Field(description="meter name: 'connector<N>' or 'station'")
    energy_wh: float = Field(ge=0, description="billing register, Wh, monotonic: the meter's import "
                                               "register advanced only by plausible steps")
    power_w: float = Field(description="total active power, W (negative = export)")
    voltage_v: float | None = Field(default=None, description="L1-N or DC voltage, V")
    current_a: float | None = Field(default=None, description="L1 or DC current, A")
    power_l1_w: float | None = Field(default=None, description="AC: active power on L1, W")
    power_l2_w: float | None = Field(default=None, description="AC: active power on L2, W")
    power_l3_w: float | None = Field(default=None, description="AC: active power on L3, W")
    voltage_l2_v: float | None = Field(default=None, description="AC: L2-N voltage, V")
    voltage_l3_v: float | None = Field(default=None, description="AC: L3-N voltage, V")
    current_l2_a: float | None = Field(default=None, description="AC: L2 current, A")
    current_l3_a: float | None = Field(default=None, description="AC: L3 current, A")
    register_wh: float | None = Field(default=None, description="the meter's raw import register, Wh")
    anomaly: str | None = Field(default=None, description="why this reading's energy step was not "
                                                          "billed: 'energy_backwards' or 'energy_jump'")
    at: datetime = Field(default_factory=utcnow)


class ConnectorState(Message):
    """One connector as smartw sees it; the HMI, ocpp16 and `status --json` read it."""

    connector_id: int = Field(ge=1)
    standard: Standard
    status: ConnectorStatus
    error_code: ConnectorErrorCode = ConnectorErrorCode.NO_ERROR
    info: str = Field(default="", description="short UI text key, e.g. 'estop', 'awaiting_card'")
    vendor_error_code: str | None = Field(default=None, description="the faulted device's own error code "
                                          "(OCPP vendorErrorCode), e.g. a charge controller's")
    plugged: bool = False
    contactor_closed: bool = False
    awaiting_card: bool = Field(default=False, description="a start was asked, a card is needed")
    power_w: float = Field(default=0.0, description="present power from the meter, W")
    meter_wh: float = Field(default=0.0, description="meter register, Wh")
    session_energy_wh: float = Field(default=0.0, description="energy of the running session, Wh")
    soc: float | None = Field(default=None, ge=0, le=100, description="EV state of charge, %")
    target_soc: float | None = Field(default=None, ge=0, le=100, description="EV target SoC, %")
    session_id: str | None = Field(default=None, description="smartw's id of the running session")
    id_tag: str | None = None
    session_started_at: datetime | None = None
    operative: bool = Field(default=True, description="False: set Inoperative (its own ChangeAvailability "
                            "or the station's); Unavailable once no session runs on it")
    at: datetime = Field(default_factory=utcnow)


class StationState(Message):
    """Station-wide state written by smartw (connector 0 in OCPP terms)."""

    status: ConnectorStatus
    estop: bool = Field(description="emergency stop pressed")
    io_online: bool = Field(description="the IO module answers")
    operative: bool = Field(default=True, description="False: the station (connector 0) is set "
                            "Inoperative; Unavailable once no session runs anywhere")
    free_mode: bool = Field(default=False, description="plugging in an EV starts charging "
                            "without a card (the configured idTag)")
    at: datetime = Field(default_factory=utcnow)


class DeviceState(Message):
    """Whether one device on the station answers (written by the service that polls it)."""

    device: str = Field(description="device name: 'meter:connector1', 'meter:station', "
                                    "'controller:1', 'io', 'imd', 'pm3' (power module), 'rfid'")
    bus: str = Field(default="", description="bus name from station.toml ('' for a serial device)")
    available: bool = Field(description="False once it missed two polls in a row (or refused)")
    reason: str = Field(default="", description="why it is unavailable or faulted, for logs and UIs")
    fault: str | None = Field(default=None, description="device-reported fault code, if any")
    at: datetime = Field(default_factory=utcnow)


class PowerModuleReading(Message):
    """One DC power module's measured output and status (smartw polls it over CAN)."""

    module: str = Field(description="'pm1'..'pmN', in station.toml order")
    address: int = Field(ge=0, le=255, description="CAN address of the module")
    voltage_v: float = Field(description="measured output voltage, V")
    current_a: float = Field(description="measured output current, A")
    output_on: bool = Field(description="the module's DC output is on")
    status: list[str] = Field(default_factory=list, description="status flags the module reports")
    fault: str | None = Field(default=None, description="readable fault, None when healthy")
    at: datetime = Field(default_factory=utcnow)


class OcppLink(Message):
    """State of the CSMS connection, written by ocpp16."""

    connected: bool
    registration: Literal["None", "Accepted", "Pending", "Rejected"] = "None"
    csms_url: str
    queued_messages: int = Field(default=0, ge=0, description="transaction messages not yet delivered")
    at: datetime = Field(default_factory=utcnow)


class OcppTransaction(Message):
    """The OCPP transaction running on a connector (ocpp16 writes; None id = not yet known)."""

    connector_id: int
    session_id: str
    transaction_id: int | None = Field(description="CSMS transactionId; None until StartTransaction.conf")
    parent_id_tag: str | None = Field(default=None, max_length=20, description="the idTag's group "
                                      "(IdTagInfo.parentIdTag) as StartTransaction.conf gave it; None: "
                                      "not given or not answered yet")


class SessionRules(Message):
    """The OCPP configuration keys smartw obeys for every session (ocpp16 writes them from its
    configuration store and again after each change). Without the key smartw uses these
    defaults: a station without OCPP behaves as one whose CSMS never changed them."""

    connection_timeout_s: float = Field(default=60.0, gt=0, description="ConnectionTimeOut, s: how long "
                                        "a start that was asked waits for the card or the EV")
    stop_on_ev_side_disconnect: bool = Field(default=True, description="StopTransactionOnEVSideDisconnect: "
                                             "False keeps an AC session (SuspendedEV) while its EV is away; "
                                             "a DC session always ends (its standard restarts on replug)")
    unlock_on_ev_side_disconnect: bool = Field(default=True, description="UnlockConnectorOnEVSideDisconnect "
                                               "(Type 2 sockets with a cable lock): False keeps the cable "
                                               "locked when its EV side is unplugged, until the session's "
                                               "idTag is presented or UnlockConnector")


class Deauthorized(Message):
    """The CSMS refused the idTag of a running session and StopTransactionOnInvalidId is false
    (ocpp16 writes, per connector; deleted when the session ends): smartw withholds power once
    the session has delivered `max_energy_wh` (OCPP MaxEnergyOnInvalidId)."""

    connector_id: int = Field(ge=1)
    session_id: str = Field(description="smartw's id of the session it applies to; another is ignored")
    id_tag: str = Field(max_length=20)
    max_energy_wh: float = Field(ge=0, description="session energy, Wh, after which no more is delivered")
    at: datetime = Field(default_factory=utcnow)


# ---- events (streams) ---------------------------------------------------------------


class CardPresented(Message):
    """A card was read by the RFID reader (rfid publishes, once per presentation)."""

    type: Literal["card_presented"] = "card_presented"
    uid: str = Field(min_length=1, max_length=20, description="upper-case hex UID = OCPP idTag")
    reader: str = "main"
    at: datetime = Field(default_factory=utcnow)


class SessionStarted(Message):
    """smartw closed the contactor for an authorised EV; ocpp16 sends StartTransaction."""

    type: Literal["session_started"] = "session_started"
    session_id: str
    connector_id: int
    id_tag: str
    meter_start_wh: float = Field(ge=0, description="meter register at start, Wh")
    reservation_id: int | None = Field(default=None, description="the reservation this session used "
                                       "(OCPP StartTransaction.reservationId); None: none")
    at: datetime = Field(default_factory=utcnow)


class SessionStopped(Message):
    """smartw ended a session (contactor open); ocpp16 sends StopTransaction."""

    type: Literal["session_stopped"] = "session_stopped"
    session_id: str
    connector_id: int
    id_tag: str | None = Field(default=None, description="who stopped it; None when the station did")
    meter_stop_wh: float = Field(ge=0, description="meter register at stop, Wh")
    reason: StopReason
    at: datetime = Field(default_factory=utcnow)


SessionEvent = Annotated[SessionStarted | SessionStopped, Field(discriminator="type")]


class AuthResult(Message):
    """Outcome of a card presented at the station, for the HMI's accepted/rejected screen."""

    type: Literal["auth_result"] = "auth_result"
    connector_id: int | None
    id_tag: str
    status: AuthorizationStatus
    at: datetime = Field(default_factory=utcnow)


# ---- commands (request/reply) -------------------------------------------------------


class StartRequest(Message):
    """Ask smartw to start on a connector; id_tag None = wait for a card (HMI start)."""

    connector_id: int = Field(ge=1)
    id_tag: str | None = Field(default=None, max_length=20)
    source: StartSource
    authorized: bool = Field(default=False, description="id_tag already authorised (remote start)")
    parent_id_tag: str | None = Field(default=None, max_length=20, description="the idTag's group "
                                      "(OCPP parentIdTag) when the caller knows it; a card of the same "
                                      "group may stop the session")


class StopRequest(Message):
    """Ask smartw to stop the session on a connector."""

    connector_id: int = Field(ge=1)
    reason: StopReason
    id_tag: str | None = None


class CommandResult(Message):
    """Generic answer to a command: accepted or not, with a UI text key saying why."""

    accepted: bool
    reason: str = ""


class AuthorizeRequest(Message):
    """Ask ocpp16 whether an idTag may charge (Authorize.req, or the offline rules)."""

    id_tag: str = Field(min_length=1, max_length=20)


class AuthorizeReply(Message):
    status: AuthorizationStatus
    parent_id_tag: str | None = Field(default=None, max_length=20, description="the idTag's group "
                                      "(OCPP IdTagInfo.parentIdTag), if the CSMS or the local list gave one")


class SimAction(Message):
    """A command to the simulator (`manage.py sim ...`)."""

    action: Literal["plug", "unplug", "swipe", "estop", "door", "pause", "resume",
                    "fault", "clear", "offline", "online"]
    connector_id: int | None = None
    device: str | None = Field(default=None, description="fault/clear/offline/online: a `sim list` name")
    kind: str | None = Field(default=None, description="fault: one of the device's fault kinds")
    standard: Literal["ccs", "chademo", "gbt", "type2"] | None = Field(
        default=None, description="plug: the EV's standard; None = the connector's own")
    soc: float | None = Field(default=None, ge=0, le=100)
    target_soc: float | None = Field(default=None, ge=0, le=100)
    capacity_kwh: float | None = Field(default=None, gt=0)
    max_power_kw: float | None = Field(default=None, gt=0)
    uid: str | None = None
    pressed: bool | None = None
    open: bool | None = Field(default=None, description="door: True opens the cabinet door, False closes it")


class Empty(Message):
    """No payload."""


class SimDeviceInfo(Message):
    """One simulated device as `sim list` shows it."""

    name: str
    online: bool
    fault_kinds: list[str]


class SimDeviceList(Message):
    devices: list[SimDeviceInfo]


# ---- chargepoint (supervisor) ---------------------------------------------------------


class ChildState(Message):
    """One service process supervised by chargepoint."""

    name: str = Field(description="service name (= its heartbeat key)")
    module: str = Field(description="python module run with `python -m`")
    status: ChildStatus
    pid: int | None = Field(default=None, description="OS pid of the running process; None while down")
    restarts: int = Field(default=0, ge=0, description="times chargepoint started it again")
    last_exit_code: int | None = Field(default=None, description="exit code of the previous process "
                                       "(negative = killed by that signal)")
    started_at: datetime | None = Field(default=None, description="when the current process started")


class SupervisorState(Message):
    """chargepoint's view of every service: pids and restart counts (status, tests, diag)."""

    pid: int = Field(description="chargepoint's own pid")
    children: list[ChildState]
    at: datetime = Field(default_factory=utcnow)


class ExitForUpdateRequest(Message):
    """Ask chargepoint to stop every service and exit with the update's exit code, so
    ops/start.sh installs the packages staged for `kind` (the FOTA job sends it)."""

    kind: UpdateKind


class RestartRequest(Message):
    """Ask chargepoint to stop every station service and start them again (OCPP Reset). The
    simulator, which plays the hardware, keeps running."""

    kind: Literal["soft", "hard"] = Field(description="soft: restart the services; hard: also run "
                                          "the configured reboot command (STATION_REBOOT_COMMAND) if any")
    reason: str = Field(default="", max_length=100, description="for the log, e.g. 'OCPP Reset Soft'")


# ---- diag -----------------------------------------------------------------------------


class DiagCheck(Message):
    """One self-test result: a device judged by what its owner publishes, or a service."""

    kind: Literal["meter", "io_module", "service"]
    subject: str = Field(description="meter name ('connector1'), 'io_module', or service name")
    state: CheckState
    age_s: float | None = Field(default=None, description="age of the value judged, s; None if missing")

    @property
    def name(self) -> str:
        """Stable id of the check, e.g. 'meter:connector1' (log lines, change tracking)."""
        return f"{self.kind}:{self.subject}"


class DiagReport(Message):
    """diag's latest self-test of every configured device and supervised service."""

    ok: bool = Field(description="every check is ok")
    checks: tuple[DiagCheck, ...]
    at: datetime = Field(default_factory=utcnow)


# ---- external power limits ------------------------------------------------------------

MIN_KEY_TTL_S = 0.001  # Redis' shortest expiry (PX 1); a shorter one is an error, not a TTL


class LimitSource(StrEnum):
    """Where an external power limit comes from: an OCPP 1.6 charging profile purpose (or the
    composite schedule of every active profile), or the station's operator."""

    OCPP_TX_DEFAULT = "ocpp_tx_default"  # TxDefaultProfile
    OCPP_TX = "ocpp_tx"  # TxProfile
    OCPP_CHARGE_POINT_MAX = "ocpp_charge_point_max"  # ChargePointMaxProfile
    OCPP_COMPOSITE = "ocpp_composite"  # the composite of every profile that applies
    OPERATOR = "operator"  # the configurator or `manage.py limit`

    @property
    def is_ocpp(self) -> bool:
        return self is not LimitSource.OPERATOR


class ChargingLimit(Message):
    """A ceiling on what one connector (or the whole station) may draw, set from outside smartw.

    One key per writer (OCPP_LIMIT, OPERATOR_LIMIT), so they never overwrite each other; smartw
    applies the lowest active one. A writer gives the key the TTL `ttl_s()` too, so the limit
    disappears at `expires_at` even when its writer died before clearing it.
    """

    connector_id: int = Field(ge=0, description="connector N; 0: the whole station")
    limit_w: float | None = Field(default=None, ge=0, allow_inf_nan=False,
                                  description="total active power, W")
    limit_a: float | None = Field(default=None, ge=0, allow_inf_nan=False, description=(
        "current per phase, A; smartw counts an AC connector's wired phases x 230 V, a DC connector "
        "and the station 3 x 230 V (their grid side); with limit_w too, the lower wins"))
    source: LimitSource
    expires_at: AwareDatetime | None = Field(default=None, description="when it stops applying "
                                             "(UTC); None: until replaced or cleared")
    set_at: AwareDatetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _a_limit_that_can_apply(self) -> ChargingLimit:
        if self.limit_w is None and self.limit_a is None:
            raise ValueError("a charging limit needs limit_w, limit_a or both")
        if self.expires_at is not None and self.expires_at <= self.set_at:
            raise ValueError(f"expires_at {self.expires_at} is not after set_at {self.set_at}")
        return self

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at

    def ttl_s(self, now: datetime) -> float | None:
        """Seconds the key should live: until `expires_at` (None: no expiry). A limit that has
        already expired is refused, never written."""
        if self.expires_at is None:
            return None
        left_s = (self.expires_at - now).total_seconds()
        if left_s <= 0:
            raise ValueError(f"the limit expired at {self.expires_at}, it cannot be written")
        return max(left_s, MIN_KEY_TTL_S)


# ---- availability and free mode (smartw) -------------------------------------------------


class ChangeAvailabilityRequest(Message):
    """Set a connector, or the whole station, Operative or Inoperative (OCPP ChangeAvailability).
    Kept across restarts; an Inoperative connector refuses new sessions."""

    connector_id: int = Field(ge=0, description="connector N; 0: the whole station")
    operative: bool = Field(description="True: Operative, False: Inoperative")


class AvailabilityReply(Message):
    """OCPP AvailabilityStatus: Scheduled = a session runs there; the change applies when it
    ends (the session is never stopped by it). Rejected: unknown connector, or not saved."""

    status: Literal["Accepted", "Rejected", "Scheduled"]


class FreeModeRequest(Message):
    """Free mode on or off: with it on, plugging in an EV starts a session at once with the
    configured idTag, without a card or Authorize. Kept across restarts."""

    enabled: bool
    id_tag: str | None = Field(default=None, min_length=1, max_length=20,
                               description="idTag of free sessions (OCPP CiString20); None: keep "
                                           "the configured one (default 'FREEMODE')")


# ---- reservations (OCPP ReserveNow: ocpp16 writes, smartw honours) ---------------------------


class ReservationHold(Message):
    """One reservation the CSMS made (OCPP ReserveNow), in force until it expires, is used by a
    session, is cancelled or its connector becomes Faulted or Unavailable."""

    reservation_id: int = Field(description="the CSMS's reservationId")
    connector_id: int = Field(ge=0, description="connector N; 0: any connector of the station "
                              "(one connector is kept free for it)")
    id_tag: str = Field(min_length=1, max_length=20, description="who may use it")
    parent_id_tag: str | None = Field(default=None, min_length=1, max_length=20,
                                      description="idTags of this group (OCPP parentIdTag) may use it too")
    expires_at: AwareDatetime = Field(description="when it lapses (UTC)")

    def active(self, now: datetime) -> bool:
        return now < self.expires_at

    def admits(self, id_tag: str, parent_id_tag: str | None) -> bool:
        """Whether `id_tag`, of the group `parent_id_tag`, may use it. idTags are CiString20:
        compared without regard to case (OCPP 1.6 errata 3.73/3.74)."""
        if id_tag.casefold() == self.id_tag.casefold():
            return True
        return (self.parent_id_tag is not None and parent_id_tag is not None
                and parent_id_tag.casefold() == self.parent_id_tag.casefold())


class Reservations(Message):
    """Every reservation in force, written whole at each change. A reader ignores an entry past
    its own expiry, so a reservation lapses on time even if its writer has died."""

    holds: tuple[ReservationHold, ...] = ()

    def active(self, now: datetime) -> tuple[ReservationHold, ...]:
        return tuple(hold for hold in self.holds if hold.active(now))

    def ttl_s(self, now: datetime) -> float | None:
        """Seconds the key should live: until the last entry expires; None when no entry is
        active (the key is then deleted, not written)."""
        active = self.active(now)
        if not active:
            return None
        return max(max(hold.expires_at for hold in active).timestamp() - now.timestamp(), MIN_KEY_TTL_S)


# ---- file transfers (jobs run them, ocpp16 tells the CSMS) ------------------------------------


class TransferStatus(StrEnum):
    """Where a file transfer job stands. The value is the OCPP status it becomes: uploads are
    DiagnosticsStatus / UploadLogStatus, downloads and installs FirmwareStatus (OCPP 1.6 and the
    Security Whitepaper's signed statuses)."""

    UPLOADING = "Uploading"
    UPLOADED = "Uploaded"
    UPLOAD_FAILED = "UploadFailed"
    DOWNLOAD_SCHEDULED = "DownloadScheduled"
    DOWNLOADING = "Downloading"
    DOWNLOADED = "Downloaded"
    DOWNLOAD_FAILED = "DownloadFailed"
    DOWNLOAD_PAUSED = "DownloadPaused"
    SIGNATURE_VERIFIED = "SignatureVerified"
    INVALID_SIGNATURE = "InvalidSignature"
    INSTALL_VERIFICATION_FAILED = "InstallVerificationFailed"
    INSTALL_SCHEDULED = "InstallScheduled"
    INSTALLING = "Installing"
    INSTALL_REBOOTING = "InstallRebooting"
    INSTALLED = "Installed"
    INSTALLATION_FAILED = "InstallationFailed"


class TransferFailure(StrEnum):
    """Why a transfer failed (with a *Failed status), closed so ocpp16 can map it to OCPP codes."""

    BAD_REQUEST = "bad_request"  # the URL (no host) or another parameter cannot be used
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"  # a scheme other than ftp, ftps, http, https
    PERMISSION_DENIED = "permission_denied"  # the server refused our credentials (FTP 530, HTTP 401/403)
    TRANSFER_FAILED = "transfer_failed"  # every attempt failed (network, server error)
    NOT_AVAILABLE = "not_available"  # this version of the station cannot do it


class FileTransferProgress(Message):
    """A step of a file transfer job (diagnostics/log upload, firmware download and install),
    published by the job as it happens; ocpp16 turns it into the matching status notification."""

    job_id: int = Field(ge=1, description="the JobRecord row of the transfer (ocpp16 knows which "
                        "OCPP request it started it for)")
    status: TransferStatus
    failure: TransferFailure | None = Field(default=None, description="with a failed status: why")
    detail: str = Field(default="", max_length=500, description="what happened, for logs")
    at: datetime = Field(default_factory=utcnow)


# ---- UnlockConnector (smartw serves it) -----------------------------------------------------------


class UnlockRequest(Message):
    """Open a Type 2 socket's cable lock (OCPP UnlockConnector); a session on the connector is
    stopped first (reason UnlockCommand)."""

    connector_id: int = Field(ge=1)


class UnlockReply(Message):
    """Unlocked: the lock's position switch reads open. UnlockFailed: it does not (or the IO
    module did not take the command). NotSupported: a fixed cable or an unknown connector."""

    status: UnlockStatus


# ---- DataTransfer to the CSMS (ocpp16 serves it) -------------------------------------------------


class DataTransferRequest(Message):
    """Send an OCPP DataTransfer.req to the CSMS (`manage.py ocpp data-transfer`)."""

    vendor_id: str = Field(min_length=1, max_length=255, description="the CSMS vendor's id (reverse DNS)")
    message_id: str | None = Field(default=None, min_length=1, max_length=50)
    data: str | None = Field(default=None, description="free text the vendor's message defines")


class DataTransferReply(Message):
    """The CSMS's answer (status and data), or why there is none: not connected/accepted
    (`offline`), no answer in time (`timeout`), CALLERROR or a malformed answer (`call_error`)."""

    status: Literal["Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId"] | None = None
    data: str | None = None
    failure: Literal["offline", "timeout", "call_error"] | None = None
    detail: str = Field(default="", max_length=500, description="with a failure: what happened")

    @model_validator(mode="after")
    def _an_answer_or_a_failure(self) -> DataTransferReply:
        if (self.status is None) == (self.failure is None):
            raise ValueError("a DataTransfer reply has either a status or a failure")
        return self
