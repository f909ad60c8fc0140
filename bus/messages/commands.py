"""Requests and replies of smartw's and ocpp16's commands (start, stop, authorize,
availability, free mode, unlock)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bus.enums import (
    AuthorizationStatus,
    StartSource,
    StopReason,
    UnlockStatus,
)
from bus.messages.base import Message


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


class UnlockRequest(Message):
    """Open a Type 2 socket's cable lock (OCPP UnlockConnector); a session on the connector is
    stopped first (reason UnlockCommand)."""

    connector_id: int = Field(ge=1)


class UnlockReply(Message):
    """Unlocked: the lock's position switch reads open. UnlockFailed: it does not (or the IO
    module did not take the command). NotSupported: a fixed cable or an unknown connector."""

    status: UnlockStatus
