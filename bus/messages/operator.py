"""What the configurator (web) publishes and asks: the HMI's settings, the OCPP link's settings,
a shutdown of the station software and an on-demand self-test."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from bus.messages.base import Message, utcnow

HmiLanguage = Literal["en", "ru"]


class QrLink(Message):
    """One QR code the HMI shows: a translated caption key and the link it encodes."""

    key: str = Field(description="which link: 'feedback', 'app_android', 'app_ios'")
    url: str = Field(max_length=500)


class HmiSettings(Message):
    """The kiosk's operator settings (web writes them at start and on every change)."""

    language: HmiLanguage = Field(default="en", description="language shown after start and after "
                                  "a session ends; the driver can switch on screen")
    qr_links: tuple[QrLink, ...] = Field(default=(), description="station-wide QR codes, in order")
    connector_link: str = Field(default="", max_length=500, description="per-connector deep link "
                                "template; {connector_id} and {charge_point_id} are filled in; "
                                "empty: no per-connector QR code")
    stop_needs_card: bool = Field(default=True, description="Stop on the HMI asks for the card "
                                  "that started the session (else any press stops it)")
    at: datetime = Field(default_factory=utcnow)


OcppLinkKey = Literal["CsmsUrl", "ChargePointId", "SecurityProfile", "AuthorizationKey"]


class OcppConfigureRequest(Message):
    """Change one setting of the CSMS link from the configurator. SecurityProfile and
    AuthorizationKey follow OCPP's ChangeConfiguration rules; CsmsUrl and ChargePointId are the
    station's own (never visible to the CSMS). A change reconnects at once."""

    key: OcppLinkKey
    value: str = Field(max_length=500)


class OcppConfigureReply(Message):
    """ChangeConfiguration's statuses: Accepted, Rejected (with why), RebootRequired, NotSupported."""

    status: Literal["Accepted", "Rejected", "RebootRequired", "NotSupported"]
    reason: str = Field(default="", max_length=300, description="why it was Rejected, for people")


class ShutdownRequest(Message):
    """Ask chargepoint to stop every service and exit 0, as on SIGTERM (ops/start.sh then exits)."""

    reason: str = Field(default="", max_length=100, description="for the log, e.g. 'configurator: admin'")


class SelfTestRequest(Message):
    """Run diag's self-test now, of the whole station (subject None) or of one check's subject
    (e.g. 'connector1', 'io_module', 'smartw')."""

    subject: str | None = Field(default=None, max_length=64)
