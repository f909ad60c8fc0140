"""Typed payloads carried by the bus, one model per message (STYLE habit 4), grouped by topic
in the modules of this package; import them from here.

Each field says its meaning and unit. Models are frozen so a snapshot read from Redis
cannot be mutated by accident; services build a new one with `model_copy(update=...)`.
"""

from __future__ import annotations

from bus.messages.base import Empty, Message, utcnow
from bus.messages.commands import (
    AuthorizeReply,
    AuthorizeRequest,
    AvailabilityReply,
    ChangeAvailabilityRequest,
    CommandResult,
    FreeModeRequest,
    StartRequest,
    StopRequest,
    UnlockReply,
    UnlockRequest,
)
from bus.messages.events import (
    AuthResult,
    CardPresented,
    SessionEvent,
    SessionStarted,
    SessionStopped,
)
from bus.messages.limits import (
    MIN_KEY_TTL_S,
    ChargingLimit,
    LimitSource,
)
from bus.messages.ocpp import (
    DataTransferReply,
    DataTransferRequest,
    Deauthorized,
    OcppLink,
    OcppTransaction,
    ReservationHold,
    Reservations,
    SessionRules,
)
from bus.messages.operator import (
    HmiLanguage,
    HmiSettings,
    OcppConfigureReply,
    OcppConfigureRequest,
    OcppLinkKey,
    QrLink,
    SelfTestRequest,
    ShutdownRequest,
)
from bus.messages.sim import (
    SimAction,
    SimDeviceInfo,
    SimDeviceList,
)
from bus.messages.state import (
    ConnectorState,
    DeviceState,
    Heartbeat,
    MeterReading,
    PowerModuleReading,
    StationState,
)
from bus.messages.supervisor import (
    ChildState,
    DiagCheck,
    DiagReport,
    ExitForUpdateRequest,
    RestartRequest,
    SupervisorState,
)
from bus.messages.transfers import (
    FileTransferProgress,
    TransferFailure,
    TransferStatus,
)
from bus.messages.updates import (
    FlashControllerReply,
    FlashControllerRequest,
    UpdateFirmwareReply,
    UpdateFirmwareRequest,
    UpdateHoldReply,
    UpdateHoldRequest,
)

__all__ = [
    "MIN_KEY_TTL_S",
    "AuthResult",
    "AuthorizeReply",
    "AuthorizeRequest",
    "AvailabilityReply",
    "CardPresented",
    "ChangeAvailabilityRequest",
    "ChargingLimit",
    "ChildState",
    "CommandResult",
    "ConnectorState",
    "DataTransferReply",
    "DataTransferRequest",
    "Deauthorized",
    "DeviceState",
    "DiagCheck",
    "DiagReport",
    "Empty",
    "ExitForUpdateRequest",
    "FileTransferProgress",
    "FlashControllerReply",
    "FlashControllerRequest",
    "FreeModeRequest",
    "Heartbeat",
    "HmiLanguage",
    "HmiSettings",
    "LimitSource",
    "Message",
    "MeterReading",
    "OcppConfigureReply",
    "OcppConfigureRequest",
    "OcppLink",
    "OcppLinkKey",
    "OcppTransaction",
    "PowerModuleReading",
    "QrLink",
    "ReservationHold",
    "Reservations",
    "RestartRequest",
    "SelfTestRequest",
    "SessionEvent",
    "SessionRules",
    "SessionStarted",
    "SessionStopped",
    "ShutdownRequest",
    "SimAction",
    "SimDeviceInfo",
    "SimDeviceList",
    "StartRequest",
    "StationState",
    "StopRequest",
    "SupervisorState",
    "TransferFailure",
    "TransferStatus",
    "UnlockReply",
    "UnlockRequest",
    "UpdateFirmwareReply",
    "UpdateFirmwareRequest",
    "UpdateHoldReply",
    "UpdateHoldRequest",
    "utcnow",
]
