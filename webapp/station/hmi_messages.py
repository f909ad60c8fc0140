"""Every payload of the HMI websocket, both ways, in one module (STYLE habit 4).

The page receives one `HmiPayload` per websocket message, told apart by its literal `type`;
it sends one `HmiAction`, told apart by `action`. Units are the bus's (W, Wh, %), so the page
formats them once and nothing is rounded twice. The same views feed `manage.py status`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter

from bus.enums import AuthorizationStatus, ConnectorErrorCode, ConnectorStatus, ReplyError, Standard
from bus.messages import (
    ConnectorState,
    HmiLanguage,
    HmiSettings,
    OcppLink,
    OcppTransaction,
    StationState,
    utcnow,
)
from webapp.station import qr
from workers.common.station_config import ConnectorConfig

UNKNOWN: Literal["Unknown"] = "Unknown"
"""Status shown when the writing service never wrote the key (not started, or Redis flushed)."""
CONNECTOR_QR_KEY = "connector"  # caption key of the per-connector deep link ('qr.connector' on the page)
STOP_NEEDS_CARD = "present_start_card"
"""Reason (a UI text key) of a Stop refused because the session's card must be presented."""


class HmiErrorCode(StrEnum):
    """Why the web service refused an action itself; bus failures use bus.enums.ReplyError."""

    MALFORMED = "Malformed"
    UNKNOWN_ACTION = "UnknownAction"
    UNKNOWN_CONNECTOR = "UnknownConnector"
    BUS_UNAVAILABLE = "BusUnavailable"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---- views of the bus state ------------------------------------------------------------


class OcppView(_Model):
    connected: bool
    registration: str
    csms_url: str = Field(description="CSMS URL without user:password")
    queued_messages: int

    @classmethod
    def from_link(cls, link: OcppLink) -> OcppView:
        return cls(connected=link.connected, registration=link.registration,
                   csms_url=_without_credentials(link.csms_url), queued_messages=link.queued_messages)


class StationView(_Model):
    """Station-wide state; None fields = smartw (or ocpp16) never wrote its key."""

    status: ConnectorStatus | Literal["Unknown"]
    estop: bool | None
    io_online: bool | None
    ocpp: OcppView | None

    @classmethod
    def from_bus(cls, state: StationState | None, link: OcppLink | None) -> StationView:
        ocpp = OcppView.from_link(link) if link else None
        if state is None:
            return cls(status=UNKNOWN, estop=None, io_online=None, ocpp=ocpp)
        return cls(status=state.status, estop=state.estop, io_online=state.io_online, ocpp=ocpp)


class ConnectorView(_Model):
    """One connector as the HMI and `status` show it: wiring from station.toml, state from smartw."""

    id: int
    standard: Standard
    max_power_kw: float
    status: ConnectorStatus | Literal["Unknown"]
    error_code: ConnectorErrorCode = ConnectorErrorCode.NO_ERROR
    info: str = Field(default="", description="UI text key from smartw")
    plugged: bool = False
    awaiting_card: bool = False
    power_w: float = 0.0
    session_energy_wh: float = 0.0
    soc: float | None = None
    target_soc: float | None = None
    session_id: str | None = None
    session_started_at: datetime | None = None
    transaction_id: int | None = None
    at: datetime | None = Field(default=None, description="when smartw wrote the state; the page "
                                "drops an update older than what it shows")

    @classmethod
    def from_bus(cls, config: ConnectorConfig, state: ConnectorState | None,
                 transaction: OcppTransaction | None) -> ConnectorView:
        wiring = {"id": config.id, "standard": config.standard, "max_power_kw": config.max_power_kw,
                  "transaction_id": transaction.transaction_id if transaction else None}
        if state is None:
            return cls(status=UNKNOWN, **wiring)
        return cls(
            status=state.status, error_code=state.error_code, info=state.info, plugged=state.plugged,
            awaiting_card=state.awaiting_card, power_w=state.power_w,
            session_energy_wh=state.session_energy_wh, soc=state.soc, target_soc=state.target_soc,
            session_id=state.session_id, session_started_at=state.session_started_at, at=state.at,
            **wiring,
        )


class QrCodeView(_Model):
    """One QR code on the kiosk: `key` names its caption (the page shows text 'qr.<key>'), `url`
    is what it encodes, `image` the code as an SVG `data:` URI for an <img> (webapp/station/qr.py)."""

    key: str
    url: str
    image: str

    @classmethod
    def drawn(cls, key: str, url: str) -> QrCodeView | None:
        """The code of `url`, or None when the link is too long for a QR code."""
        image = qr.svg_data_uri(url)
        return cls(key=key, url=url, image=image) if image else None


class ConnectorQrView(_Model):
    connector_id: int
    code: QrCodeView


class KioskView(_Model):
    """The operator's settings of the kiosk (contract.HMI_SETTINGS) as the page uses them: the
    default language and the QR codes, drawn. Only configured links are drawn; the connector
    deep link needs the charge point id the CSMS knows the station by."""

    language: HmiLanguage
    qr_codes: tuple[QrCodeView, ...]
    connector_codes: tuple[ConnectorQrView, ...]

    @classmethod
    def from_settings(cls, settings: HmiSettings, connector_ids: list[int],
                      charge_point_id: str) -> KioskView:
        station = [QrCodeView.drawn(link.key, link.url) for link in settings.qr_links]
        connectors: list[ConnectorQrView] = []
        if settings.connector_link:
            for connector_id in connector_ids:
                url = qr.connector_link(settings.connector_link, connector_id, charge_point_id)
                code = QrCodeView.drawn(CONNECTOR_QR_KEY, url)
                if code is not None:
                    connectors.append(ConnectorQrView(connector_id=connector_id, code=code))
        return cls(language=settings.language, qr_codes=tuple(code for code in station if code),
                   connector_codes=tuple(connectors))


# ---- server -> page ----------------------------------------------------------------------


class SnapshotPayload(_Model):
    """Sent once on connect: everything the page shows. `server_time` lets the page count
    elapsed time with the station's clock, not the kiosk browser's."""

    type: Literal["snapshot"] = "snapshot"
    station: StationView
    connectors: list[ConnectorView]
    server_time: datetime = Field(default_factory=utcnow)


class KioskPayload(_Model):
    """Sent on connect (before the snapshot, so the first screen is in the right language) and
    whenever the operator's settings change."""

    type: Literal["kiosk"] = "kiosk"
    kiosk: KioskView


class SessionSummaryPayload(_Model):
    """A session on the connector just ended: what it delivered, for the end-of-session screen.
    Energy is the session's last reading before the stop (the contactor opens once no power
    flows, so it is the final one); duration runs to smartw's first state without the session."""

    type: Literal["session_summary"] = "session_summary"
    connector_id: int
    energy_wh: float
    duration_s: float | None = Field(description="None: the start time was not known")

    @classmethod
    def after(cls, before: ConnectorView, now: ConnectorView) -> SessionSummaryPayload | None:
        """The summary when `before` showed a session that `now` no longer shows, else None."""
        if before.session_id is None or now.session_id == before.session_id or now.status == UNKNOWN:
            return None
        started, ended = before.session_started_at, now.at
        duration = (ended - started).total_seconds() if started and ended else None
        return cls(connector_id=now.id, energy_wh=before.session_energy_wh,
                   duration_s=max(duration, 0.0) if duration is not None else None)


class ConnectorPayload(_Model):
    type: Literal["connector"] = "connector"
    connector: ConnectorView


class StationPayload(_Model):
    type: Literal["station"] = "station"
    station: StationView


class AuthPayload(_Model):
    """A card was presented; the tag itself is not sent to the screen."""

    type: Literal["auth"] = "auth"
    connector_id: int | None
    status: AuthorizationStatus


class ActionResultPayload(_Model):
    """smartw's answer to a start/stop button, or the web service's own refusal of a Stop
    (STOP_NEEDS_CARD); `reason` is a UI text key."""

    type: Literal["action_result"] = "action_result"
    action: Literal["start", "stop"]
    connector_id: int
    accepted: bool
    reason: str = ""


class ErrorPayload(_Model):
    """An action that could not be carried out; `code` is from a closed set."""

    type: Literal["error"] = "error"
    code: HmiErrorCode | ReplyError
    detail: str = ""
    connector_id: int | None = None


HmiPayload = Annotated[
    SnapshotPayload | KioskPayload | ConnectorPayload | StationPayload | AuthPayload
    | SessionSummaryPayload | ActionResultPayload | ErrorPayload,
    Field(discriminator="type"),
]
PAYLOAD_ADAPTER: TypeAdapter[HmiPayload] = TypeAdapter(HmiPayload)


# ---- page -> server ----------------------------------------------------------------------


class StartAction(_Model):
    """Start button: smartw then waits for a card (id_tag None, source hmi)."""

    action: Literal["start"]
    connector_id: StrictInt


class StopAction(_Model):
    """Stop button: stop the session (reason Local), or cancel a start that waits for a card.
    While HmiSettings.stop_needs_card is on, a running session is stopped only by its card
    (the web service refuses this action with reason STOP_NEEDS_CARD)."""

    action: Literal["stop"]
    connector_id: StrictInt


HmiAction = Annotated[StartAction | StopAction, Field(discriminator="action")]
ACTION_ADAPTER: TypeAdapter[HmiAction] = TypeAdapter(HmiAction)


def _without_credentials(url: str) -> str:
    """Drop `user:password@` from a URL: views are shown on screens and printed in terminals."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
