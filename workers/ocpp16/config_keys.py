"""Every OCPP 1.6 configuration key of this charge point, declared once (STYLE habit 12).

Each key has its type, access (R read-only, RW, W write-only), default, bounds or allowed
tokens, and whether a change needs a reboot (ocpp16.md §2.11). `ConfigurationStore` keeps the
values: the default, unless ChangeConfiguration (or the operator) stored another one in the
table `OcppSetting`, so a change survives a reboot. Defaults that depend on the station
(NumberOfConnectors) or on the environment (the `OCPP_*` variables of settings.py, kept for
tools and tests) are given when the store is built.

Values are parsed strictly, because a CSMS sends strings and a lenient parser turns a typo into
a setting nobody asked for: integers are ASCII digits, seconds have at most three decimals,
text is printable, a list has no empty or repeated items. A value that parses is formatted back
to the same typed value (round trip), so what GetConfiguration reports is what is in force.

Vendor keys (prefix `Station`) expose the station's own settings the same way. Those smartw
owns (`Holder.SMARTW`) are never stored here: vendor_keys.py reads and changes them at smartw.
Other modules follow a key with `store.listen` (or `IntervalPacer` in pacing.py for a loop paced by one).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ocpp.v16.enums import ConfigurationStatus

from workers.ocpp16 import measurands

log = logging.getLogger(__name__)

MAX_VALUE_CHARS = 500  # GetConfiguration / ChangeConfiguration value limit (schema)
SHOWN_CHARS = 40  # of a refused value, in an error message
INTEGER = re.compile(r"-?[0-9]+")
DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]{1,3})?")  # seconds: millisecond resolution at most


class Access(StrEnum):
    READ = "R"
    READ_WRITE = "RW"
    WRITE = "W"  # never returned by GetConfiguration (AuthorizationKey)


class Kind(StrEnum):
    BOOL = "bool"
    INT = "int"
    SECONDS = "seconds"  # seconds; up to 3 decimals accepted (tools and tests use 0.2 s)
    CSL = "csl"  # comma-separated list
    TEXT = "text"


class Holder(StrEnum):
    """Where a key's value lives."""

    OCPP16 = "ocpp16"  # this store, persisted in OcppSetting
    SMARTW = "smartw"  # smartw's RuntimeSettings row: read and changed by vendor_keys.py


class InvalidValue(ValueError):
    """A value a key cannot take (ChangeConfiguration answers Rejected). The message is the
    rule broken ("must be ..."), for the caller to prefix with what was being set."""


# Measurands this station can sample (meter register, power, voltage, current, the EV's SoC,
# what smartw offers). A CSL key naming another one is Rejected (ocpp16.md §2.6).
SUPPORTED_MEASURANDS = measurands.READABLE
PHASES = ("L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1")
FEATURE_PROFILES = ("Core", "FirmwareManagement", "LocalAuthListManagement", "Reservation",
                    "SmartCharging", "RemoteTrigger")
PHASE_ROTATIONS = frozenset({"NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR"})
CSL_MAX_ITEMS = 8  # *MaxLength keys


def _shown(text: str) -> str:
    return repr(text[:SHOWN_CHARS] + ("..." if len(text) > SHOWN_CHARS else ""))


def _measurand_item(item: str) -> None:
    if item in SUPPORTED_MEASURANDS:
        return
    # `Voltage.L1` style: a measurand followed by a phase (ocpp16.md §2.6)
    for measurand in SUPPORTED_MEASURANDS:
        if item.startswith(measurand + ".") and item[len(measurand) + 1:] in PHASES:
            return
    raise InvalidValue(f"must name supported measurands; {_shown(item)} is not one")


def _phase_rotation_item(item: str) -> None:
    connector, dot, rotation = item.partition(".")
    if not dot or not INTEGER.fullmatch(connector) or connector.startswith("-") \
            or rotation not in PHASE_ROTATIONS:
        raise InvalidValue(f"must be <connector>.<rotation> items; {_shown(item)} is not")


@dataclass(frozen=True)
class ConfigKey:
    """One configuration key: how it is typed, read, changed and checked."""

    name: str
    kind: Kind
    access: Access
    default: str
    minimum: int | None = None
    maximum: int | None = None
    item_check: Callable[[str], None] | None = None  # CSL: each item
    max_items: int | None = None  # CSL
    max_chars: int = MAX_VALUE_CHARS
    min_chars: int = 0  # TEXT
    reboot_required: bool = False
    secret: bool = False  # never logged, never returned
    holder: Holder = Holder.OCPP16

    def parse(self, text: str) -> Any:
        """The typed value of `text`, or InvalidValue."""
        if len(text) > MAX_VALUE_CHARS:
            raise InvalidValue(f"must be at most {MAX_VALUE_CHARS} characters")
        text = text.strip()
        if self.kind is Kind.BOOL:
            if text.lower() not in ("true", "false"):
                raise InvalidValue("must be true or false")
            return text.lower() == "true"
        if self.kind is Kind.INT:
            if not INTEGER.fullmatch(text):
                raise InvalidValue(f"must be an integer, got {_shown(text)}")
            return self._bounded(int(text))
        if self.kind is Kind.SECONDS:
            if not DECIMAL.fullmatch(text):
                raise InvalidValue(f"must be a number, got {_shown(text)}")
            return self._bounded(float(text) + 0.0)  # + 0.0: no "-0"
        if self.kind is Kind.CSL:
            return self._parse_csl(text)
        return self._parse_text(text)

    def _bounded(self, value: float) -> Any:
        if self.minimum is not None and value < self.minimum:
            raise InvalidValue(f"must be at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidValue(f"must be at most {self.maximum}")
        return value

    def _parse_csl(self, text: str) -> tuple[str, ...]:
        if not text:
            return ()
        items = tuple(item.strip() for item in text.split(","))
        if "" in items:
            raise InvalidValue("must be a comma-separated list without empty items")
        if len(set(items)) != len(items):
            raise InvalidValue("must not name an item twice")
        if self.max_items is not None and len(items) > self.max_items:
            raise InvalidValue(f"takes at most {self.max_items} items")
        if self.item_check is not None:
            for item in items:
                self.item_check(item)
        return items

    def _parse_text(self, text: str) -> str:
        if len(text) > self.max_chars:
            raise InvalidValue(f"must be at most {self.max_chars} characters")
        if len(text) < self.min_chars:
            raise InvalidValue(f"must be at least {self.min_chars} characters")
        if not text.isprintable():
            raise InvalidValue("must be printable text")
        return text

    def format(self, value: Any) -> str:
        """The OCPP string of a typed value (parses back to the same value)."""
        if self.kind is Kind.BOOL:
            return "true" if value else "false"
        if self.kind is Kind.CSL:
            return ",".join(value)
        if self.kind is Kind.SECONDS:
            return f"{value:.0f}" if float(value).is_integer() else f"{value:.3f}".rstrip("0")
        return str(value)


def _bool(name: str, default: bool, access: Access = Access.READ_WRITE) -> ConfigKey:
    return ConfigKey(name, Kind.BOOL, access, "true" if default else "false")


def _read_only(name: str, default: int) -> ConfigKey:
    return ConfigKey(name, Kind.INT, Access.READ, str(default), 0)


def _int(name: str, default: int, minimum: int | None = 0, maximum: int | None = None,
         access: Access = Access.READ_WRITE, reboot_required: bool = False) -> ConfigKey:
    return ConfigKey(name, Kind.INT, access, str(default), minimum, maximum, reboot_required=reboot_required)


def _seconds(name: str, default: int, minimum: int = 0, maximum: int = 86_400) -> ConfigKey:
    return ConfigKey(name, Kind.SECONDS, Access.READ_WRITE, str(default), minimum, maximum)


def _measurands(name: str, default: str) -> ConfigKey:
    return ConfigKey(name, Kind.CSL, Access.READ_WRITE, default, item_check=_measurand_item,
                     max_items=CSL_MAX_ITEMS)


# ---- Core (OCPP 1.6 §9.1; errata 3.82, 3.89) ---------------------------------------------------
ALLOW_OFFLINE_TX_FOR_UNKNOWN_ID = _bool("AllowOfflineTxForUnknownId", False)
AUTHORIZATION_CACHE_ENABLED = _bool("AuthorizationCacheEnabled", True)
AUTHORIZE_REMOTE_TX_REQUESTS = _bool("AuthorizeRemoteTxRequests", False)
BLINK_REPEAT = _int("BlinkRepeat", 3, 0, 100)
CLOCK_ALIGNED_DATA_INTERVAL = _seconds("ClockAlignedDataInterval", 0)
CONNECTION_TIME_OUT = _seconds("ConnectionTimeOut", 120, 1, 3_600)
CONNECTOR_PHASE_ROTATION = ConfigKey("ConnectorPhaseRotation", Kind.CSL, Access.READ_WRITE, "0.Unknown",
                                     item_check=_phase_rotation_item, max_items=CSL_MAX_ITEMS)
CONNECTOR_PHASE_ROTATION_MAX_LENGTH = _read_only("ConnectorPhaseRotationMaxLength", CSL_MAX_ITEMS)
GET_CONFIGURATION_MAX_KEYS = _read_only("GetConfigurationMaxKeys", 100)
HEARTBEAT_INTERVAL = _seconds("HeartbeatInterval", 300, 1)
LIGHT_INTENSITY = _int("LightIntensity", 100, 0, 100)
LOCAL_AUTHORIZE_OFFLINE = _bool("LocalAuthorizeOffline", True)
LOCAL_PRE_AUTHORIZE = _bool("LocalPreAuthorize", False)
MAX_ENERGY_ON_INVALID_ID = _int("MaxEnergyOnInvalidId", 0, 0, 1_000_000)
MESSAGE_TIMEOUT = _seconds("MessageTimeout", 30, 1, 600)
METER_VALUES_ALIGNED_DATA = _measurands("MeterValuesAlignedData", "Energy.Active.Import.Register")
METER_VALUES_ALIGNED_DATA_MAX_LENGTH = _read_only("MeterValuesAlignedDataMaxLength", CSL_MAX_ITEMS)
METER_VALUES_SAMPLED_DATA = _measurands("MeterValuesSampledData",
                                        "Energy.Active.Import.Register,Power.Active.Import,SoC")
METER_VALUES_SAMPLED_DATA_MAX_LENGTH = _read_only("MeterValuesSampledDataMaxLength", CSL_MAX_ITEMS)
METER_VALUE_SAMPLE_INTERVAL = _seconds("MeterValueSampleInterval", 60)
MINIMUM_STATUS_DURATION = _seconds("MinimumStatusDuration", 0, 0, 3_600)
NUMBER_OF_CONNECTORS = _read_only("NumberOfConnectors", 1)
RESET_RETRIES = _int("ResetRetries", 1, 0, 10)
STOP_TRANSACTION_ON_EV_SIDE_DISCONNECT = _bool("StopTransactionOnEVSideDisconnect", True)
STOP_TRANSACTION_ON_INVALID_ID = _bool("StopTransactionOnInvalidId", True)
STOP_TRANSACTION_MAX_METER_VALUES = _read_only("StopTransactionMaxMeterValues", 500)
STOP_TXN_ALIGNED_DATA = _measurands("StopTxnAlignedData", "")
STOP_TXN_ALIGNED_DATA_MAX_LENGTH = _read_only("StopTxnAlignedDataMaxLength", CSL_MAX_ITEMS)
STOP_TXN_SAMPLED_DATA = _measurands("StopTxnSampledData", "Energy.Active.Import.Register")
STOP_TXN_SAMPLED_DATA_MAX_LENGTH = _read_only("StopTxnSampledDataMaxLength", CSL_MAX_ITEMS)
SUPPORTED_FEATURE_PROFILES = ConfigKey("SupportedFeatureProfiles", Kind.CSL, Access.READ,
                                       ",".join(FEATURE_PROFILES))
TRANSACTION_MESSAGE_ATTEMPTS = _int("TransactionMessageAttempts", 3, 1, 100)
TRANSACTION_MESSAGE_RETRY_INTERVAL = _seconds("TransactionMessageRetryInterval", 60)
# RW on a station with a Type 2 socket's cable lock (smartw obeys it: workers/smartw/cable_lock.py);
# a station whose cables are all fixed has nothing to unlock: R/false there (errata 3.83, station_keys).
UNLOCK_CONNECTOR_ON_EV_SIDE_DISCONNECT = _bool("UnlockConnectorOnEVSideDisconnect", True)
WEB_SOCKET_PING_INTERVAL = _seconds("WebSocketPingInterval", 60)

# ---- Local Auth List Management (§9.2) ----------------------------------------------------------
LOCAL_AUTH_LIST_ENABLED = _bool("LocalAuthListEnabled", True)
LOCAL_AUTH_LIST_MAX_LENGTH = _read_only("LocalAuthListMaxLength", 10_000)
SEND_LOCAL_LIST_MAX_LENGTH = _read_only("SendLocalListMaxLength", 1_000)

# ---- Reservation (§9.3) -------------------------------------------------------------------------
RESERVE_CONNECTOR_ZERO_SUPPORTED = _bool("ReserveConnectorZeroSupported", True, Access.READ)

# ---- Smart Charging (§9.4) ----------------------------------------------------------------------
CHARGE_PROFILE_MAX_STACK_LEVEL = _read_only("ChargeProfileMaxStackLevel", 10)
CHARGING_SCHEDULE_ALLOWED_CHARGING_RATE_UNIT = ConfigKey("ChargingScheduleAllowedChargingRateUnit", Kind.CSL,
                                                         Access.READ, "Current,Power")
CHARGING_SCHEDULE_MAX_PERIODS = _read_only("ChargingScheduleMaxPeriods", 48)
CONNECTOR_SWITCH_3_TO_1_PHASE_SUPPORTED = _bool("ConnectorSwitch3to1PhaseSupported", False, Access.READ)
MAX_CHARGING_PROFILES_INSTALLED = _read_only("MaxChargingProfilesInstalled", 64)

# ---- Firmware Management (errata 3.88) ----------------------------------------------------------
SUPPORTED_FILE_TRANSFER_PROTOCOLS = ConfigKey("SupportedFileTransferProtocols", Kind.CSL, Access.READ,
                                              "FTP,FTPS,HTTP,HTTPS")

# ---- Security Whitepaper ed.2 §7 ----------------------------------------------------------------
ADDITIONAL_ROOT_CERTIFICATE_CHECK = _bool("AdditionalRootCertificateCheck", False, Access.READ)
AUTHORIZATION_KEY = ConfigKey("AuthorizationKey", Kind.TEXT, Access.WRITE, "", max_chars=40, secret=True)
CERTIFICATE_SIGNED_MAX_CHAIN_SIZE = _read_only("CertificateSignedMaxChainSize", 10_000)
CERTIFICATE_STORE_MAX_LENGTH = _read_only("CertificateStoreMaxLength", 10)
CPO_NAME = ConfigKey("CpoName", Kind.TEXT, Access.READ_WRITE, "", max_chars=64)
SECURITY_PROFILE = _int("SecurityProfile", 0, 0, 3)

# ---- Vendor keys: the station's own settings (vendor_keys.py) ----------------------------------
# Free mode is smartw's (its RuntimeSettings row); these defaults are only its factory state.
STATION_FREE_MODE = ConfigKey("StationFreeMode", Kind.BOOL, Access.READ_WRITE, "false", holder=Holder.SMARTW)
STATION_FREE_MODE_ID_TAG = ConfigKey("StationFreeModeIdTag", Kind.TEXT, Access.READ_WRITE, "FREEMODE",
                                     max_chars=20, min_chars=1, holder=Holder.SMARTW)  # CiString20

ALL_KEYS: tuple[ConfigKey, ...] = tuple(
    value for value in dict(globals()).values() if isinstance(value, ConfigKey))

Listener = Callable[[ConfigKey, Any], None]


def station_keys(*, cable_locks: bool) -> tuple[ConfigKey, ...]:
    """The keys of this station: every key, with UnlockConnectorOnEVSideDisconnect read-only and
    false when no connector has a cable lock (every cable fixed: OCPP 1.6 errata 3.83)."""
    if cable_locks:
        return ALL_KEYS
    fixed = _bool(UNLOCK_CONNECTOR_ON_EV_SIDE_DISCONNECT.name, False, Access.READ)
    return tuple(fixed if key is UNLOCK_CONNECTOR_ON_EV_SIDE_DISCONNECT else key for key in ALL_KEYS)


class ConfigurationStore:
    """The value of every key, kept in memory; persisted on change by persisted.py.

    Checks that need more than the key's own rules (e.g. SecurityProfile may only go up,
    AuthorizationKey needs hex) are `guards` per key: a guard raises InvalidValue to refuse a
    change. Key names are CiString50 in OCPP, so they are found case-insensitively.
    """

    def __init__(self, defaults: Mapping[str, str] | None = None, stored: Mapping[str, str] | None = None,
                 keys: Iterable[ConfigKey] = ALL_KEYS) -> None:
        self._by_name = {key.name: key for key in keys}
        self._by_folded_name = {key.name.casefold(): key for key in self._by_name.values()}
        self._text: dict[str, str] = {key.name: key.default for key in self._by_name.values()}
        for source in (defaults or {}), (stored or {}):
            for name, text in source.items():
                self._take(name, text)
        self._listeners: dict[str, list[Listener]] = {}
        self._guards: dict[str, list[Callable[[Any], None]]] = {}

    def _take(self, name: str, text: str) -> None:
        key = self._by_name.get(name)
        if key is None or key.holder is not Holder.OCPP16:
            log.warning("stored configuration key %s is not one of ocpp16's; ignored", name)
            return
        try:
            value = key.parse(text)
        except InvalidValue as error:
            log.error("configuration %s %s; the default is used", name, error)
            return
        self._text[name] = key.format(value)

    @property
    def keys(self) -> tuple[ConfigKey, ...]:
        return tuple(self._by_name.values())

    def find(self, name: str) -> ConfigKey | None:
        """The key called `name` (exact spelling first, then case-insensitively)."""
        return self._by_name.get(name) or self._by_folded_name.get(name.casefold())

    def get(self, key: ConfigKey) -> Any:
        """The typed value (bool, int, float seconds, tuple of str, or str)."""
        return key.parse(self.text(key))

    def text(self, key: ConfigKey) -> str:
        if key.holder is not Holder.OCPP16:  # its value here would be a stale default
            raise ValueError(f"{key.name} is held by {key.holder}: read it through vendor_keys")
        return self._text[key.name]

    def listen(self, key: ConfigKey, listener: Listener) -> None:
        """Call `listener(key, new value)` after each accepted change of `key`."""
        self._listeners.setdefault(key.name, []).append(listener)

    def guard(self, key: ConfigKey, check: Callable[[Any], None]) -> None:
        self._guards.setdefault(key.name, []).append(check)

    def check_change(self, name: str, text: str) -> tuple[ConfigurationStatus, ConfigKey | None, Any]:
        """What ChangeConfiguration answers for (name, text), without changing anything; every
        refusal is logged (never with a secret key's value)."""
        key = self.find(name)
        if key is None:
            log.info("ChangeConfiguration %.50r: no such key (NotSupported)", name)
            return ConfigurationStatus.not_supported, None, None
        if key.access is Access.READ:
            log.info("ChangeConfiguration %s: read-only (Rejected)", key.name)
            return ConfigurationStatus.rejected, key, None
        try:
            value = self.checked(key, text)
        except InvalidValue as error:
            log.info("ChangeConfiguration %s rejected: %s", key.name, "(hidden)" if key.secret else error)
            return ConfigurationStatus.rejected, key, None
        status = ConfigurationStatus.reboot_required if key.reboot_required else ConfigurationStatus.accepted
        return status, key, value

    def checked(self, key: ConfigKey, text: str) -> Any:
        """The typed value of `text` if the key's rules and every guard of it allow it, else
        InvalidValue (ChangeConfiguration, and the configurator through operator_config.py)."""
        value = key.parse(text)
        for check in self._guards.get(key.name, ()):
            check(value)
        return value

    def apply(self, key: ConfigKey, value: Any) -> None:
        """Take a checked value of one of ocpp16's keys (persist it first, outside, then call this)."""
        self.text(key)  # raises for a key another service holds
        text = key.format(value)
        key.parse(text)  # InvalidValue now for a value outside the key's rules, not at every later get()
        self._text[key.name] = text
        log.info("configuration %s = %s", key.name, "(hidden)" if key.secret else text)
        for listener in self._listeners.get(key.name, ()):
            try:
                listener(key, value)
            except Exception:  # one listener's bug must not undo an accepted change
                log.exception("listener of %s failed", key.name)

    def readable(self, names: Iterable[str] | None = None) -> tuple[list[ConfigKey], list[str]]:
        """The keys GetConfiguration reports (every readable one when `names` is empty), each
        once, and the names it does not know; write-only keys count as unknown (never returned)."""
        wanted = list(names) if names else [key.name for key in self._by_name.values()
                                             if key.access is not Access.WRITE]
        found: dict[str, ConfigKey] = {}
        unknown: dict[str, None] = {}
        for name in wanted:
            key = self.find(name)
            if key is None or key.access is Access.WRITE:
                unknown[name] = None
            else:
                found[key.name] = key
        return list(found.values()), list(unknown)
