"""What the CSMS-facing handlers and ocpp16's features share, built once per process.

The handlers (workers/ocpp16/handlers/) run inside the `ocpp` library's receive loop and must
answer fast; they reach the station through this context: the bus, the configuration keys,
the second outgoing lane (`notices`) for follow-up CALLs, and one object per feature profile.
A feature object may also run background work (`Feature`): always (`run`), and per
connection once registration is Accepted (`connected`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bus import Bus
from workers.ocpp16.config_keys import ConfigurationStore
from workers.ocpp16.settings import Ocpp16Settings

if TYPE_CHECKING:
    from workers.ocpp16.auth.authorizer import Authorizer
    from workers.ocpp16.diagnostics import Diagnostics
    from workers.ocpp16.firmware import FirmwareUpdates
    from workers.ocpp16.notices import Notices
    from workers.ocpp16.protocol import CsmsConnection
    from workers.ocpp16.remote import BusRemoteControl
    from workers.ocpp16.reservations import ReservationKeeper
    from workers.ocpp16.security.feature import Security
    from workers.ocpp16.smart_charging import SmartCharging
    from workers.ocpp16.triggers import Triggers


@runtime_checkable
class BackgroundFeature(Protocol):
    async def run(self) -> None:
        """Work that runs as long as the service does, online or not."""


@runtime_checkable
class ConnectedFeature(Protocol):
    async def connected(self, connection: CsmsConnection) -> None:
        """Work over one connection after registration was Accepted (ends when it closes)."""


@dataclass
class ChargePointContext:
    bus: Bus
    settings: Ocpp16Settings
    config: ConfigurationStore
    notices: Notices
    remote: BusRemoteControl
    is_accepted: Callable[[], bool]
    registration: Callable[[], str]  # "None" / "Pending" / "Accepted" / "Rejected"
    # One object per feature; the service builds them (see service.py), handlers use them.
    auth: Authorizer = None  # type: ignore[assignment]  # workers/ocpp16/auth; built by features.py
    smart_charging: SmartCharging = None  # type: ignore[assignment]  # smart_charging/; built by features.py
    reservations: ReservationKeeper = None  # type: ignore[assignment]  # reservations.py; built by features.py
    security: Security = None  # type: ignore[assignment]  # security/feature.py; built by features.py
    firmware: FirmwareUpdates = None  # type: ignore[assignment]  # firmware.py: (Signed)UpdateFirmware
    diagnostics: Diagnostics = None  # type: ignore[assignment]  # diagnostics.py: GetDiagnostics, GetLog
    triggers: Triggers = None  # type: ignore[assignment]  # triggers.py: what TriggerMessage can send
    reset: Any = None  # workers/ocpp16/reset.py: StationReset, Reset.req carried out
    features: list[object] = field(default_factory=list)  # every object above with background work

    def add_feature(self, feature: object) -> None:
        self.features.append(feature)
