"""What ocpp16 publishes for other services (link, transactions, session rules, refused
idTags, reservations) and the DataTransfer command."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field, model_validator

from bus.messages.base import Message, utcnow
from bus.messages.limits import MIN_KEY_TTL_S


class OcppLink(Message):
    """State of the CSMS connection, written by ocpp16."""

    connected: bool
    registration: Literal["None", "Accepted", "Pending", "Rejected"] = "None"
    csms_url: str
    charge_point_id: str = Field(default="", max_length=48, description="the identity the station "
                                 "connects as (the last part of the URL path)")
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
