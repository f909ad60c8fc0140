"""Closed vocabularies shared by every service.

Each enum's value is the wire string (OCPP 1.6 spelling where OCPP has one), so a value
read from the bus can be sent to the CSMS or shown by the HMI without a translation table.
"""

from enum import StrEnum


class ConnectorStatus(StrEnum):
    """OCPP 1.6 ChargePointStatus (§7.7); connector 0 uses only Available/Unavailable/Faulted."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EVSE = "SuspendedEVSE"
    SUSPENDED_EV = "SuspendedEV"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class ConnectorErrorCode(StrEnum):
    """OCPP 1.6 ChargePointErrorCode (§7.6)."""

    CONNECTOR_LOCK_FAILURE = "ConnectorLockFailure"
    EV_COMMUNICATION_ERROR = "EVCommunicationError"
    GROUND_FAILURE = "GroundFailure"
    HIGH_TEMPERATURE = "HighTemperature"
    INTERNAL_ERROR = "InternalError"
    LOCAL_LIST_CONFLICT = "LocalListConflict"
    NO_ERROR = "NoError"
    OTHER_ERROR = "OtherError"
    OVER_CURRENT_FAILURE = "OverCurrentFailure"
    OVER_VOLTAGE = "OverVoltage"
    POWER_METER_FAILURE = "PowerMeterFailure"
    POWER_SWITCH_FAILURE = "PowerSwitchFailure"
    READER_FAILURE = "ReaderFailure"
    RESET_FAILURE = "ResetFailure"
    UNDER_VOLTAGE = "UnderVoltage"
    WEAK_SIGNAL = "WeakSignal"


class StopReason(StrEnum):
    """OCPP 1.6 Reason (§7.41): why a charging session ended."""

    EMERGENCY_STOP = "EmergencyStop"
    EV_DISCONNECTED = "EVDisconnected"
    HARD_RESET = "HardReset"
    LOCAL = "Local"
    OTHER = "Other"
    POWER_LOSS = "PowerLoss"
    REBOOT = "Reboot"
    REMOTE = "Remote"
    SOFT_RESET = "SoftReset"
    UNLOCK_COMMAND = "UnlockCommand"
    DE_AUTHORIZED = "DeAuthorized"


class UnlockStatus(StrEnum):
    """OCPP 1.6 UnlockStatus: the answer to UnlockConnector (§5.18)."""

    UNLOCKED = "Unlocked"
    UNLOCK_FAILED = "UnlockFailed"
    NOT_SUPPORTED = "NotSupported"


class AuthorizationStatus(StrEnum):
    """OCPP 1.6 AuthorizationStatus (§7.2)."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"


class Standard(StrEnum):
    """Connector standard; decides the session phases the controller follows."""

    CCS = "CCS"
    CHADEMO = "CHAdeMO"
    GBT = "GBT"
    TYPE2 = "Type2"


class StartSource(StrEnum):
    """Who asked to start a session: decides whether a card is still needed."""

    HMI = "hmi"
    RFID = "rfid"
    REMOTE = "remote"


class ReplyError(StrEnum):
    """Closed set of reasons a request/reply failed; never free text (STYLE habit 2)."""

    TIMEOUT = "Timeout"
    NOT_READY = "NotReady"
    HANDLER_ERROR = "HandlerError"
    VALIDATION_FAILED = "ValidationFailed"


class UpdateKind(StrEnum):
    """What an update installs; chargepoint exits with one code per kind and ops/start.sh
    installs the packages staged under STATION_DATA_DIR/packages/staged/<value>/."""

    SOFTWARE = "software"
    WEB_CONFIGURATOR = "web-configurator"
    CONTROLLER_FIRMWARE = "controller-firmware"


class ChildStatus(StrEnum):
    """A service process as chargepoint sees it."""

    STARTING = "starting"  # spawned, no heartbeat yet
    RUNNING = "running"  # heartbeat seen with its pid
    BACKOFF = "backoff"  # exited or killed, waiting to be started again
    STOPPED = "stopped"  # chargepoint stopped it (station stopping)


class CheckState(StrEnum):
    """Result of one diag check (a meter, the IO module, a service); the value is the UI key."""

    OK = "ok"
    STALE = "stale"  # present but older than its owner's cadence allows
    MISSING = "missing"  # no value: the owner never wrote it, or it expired
    OFFLINE = "offline"  # the owner reports that the device does not answer
    INVALID = "invalid"  # the value on the bus does not match the contract
    FAULTED = "faulted"  # the device answers but reports a fault of its own (e.g. an IMD alarm)
