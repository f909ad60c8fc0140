"""Events on the bus streams: cards presented, sessions started and stopped, authorization results."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from bus.enums import (
    AuthorizationStatus,
    StopReason,
)
from bus.messages.base import Message, utcnow


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
