"""Every request body and response of the REST API, with units, in one module.

The station's state keeps the bus's units (W, Wh, %, kW for ratings) and the names of
`manage.py status --json`, so a script can move from one to the other. Times are ISO 8601 UTC.
Error bodies are `ErrorOut` (one `detail` for people) or, for bad input, `ValidationErrorOut`
(the same `detail` plus one entry per wrong field).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema
from pydantic import AwareDatetime, BaseModel, ConfigDict, StrictBool, field_validator, model_validator

from bus.enums import ConnectorErrorCode, ConnectorStatus, Standard
from bus.messages import MeterReading


def id_tag_field(meaning: str) -> Any:
    """An optional OCPP idTag (CiString20): 1 to 20 printable characters without spaces."""
    return Field(None, min_length=1, max_length=20, pattern=r"^\S+$",
                 description=f"{meaning}; 1 to 20 printable characters without spaces")


# ---- errors --------------------------------------------------------------------------------


class ErrorOut(Schema):
    detail: str = Field(description="what went wrong, for people")


class FieldErrorOut(Schema):
    location: str = Field(description="where: 'body.operative', 'query.limit', 'path.connector_id'")
    message: str


class ValidationErrorOut(Schema):
    detail: str = Field(description="every problem in one sentence, for people")
    errors: list[FieldErrorOut] = Field(description="one entry per wrong field (empty when the "
                                                    "request as a whole is refused)")


# ---- station state (from the bus) ----------------------------------------------------------


class OcppOut(Schema):
    connected: bool = Field(description="the websocket to the CSMS is open")
    registration: str = Field(description="BootNotification answer: Accepted, Pending, Rejected or Unknown")
    csms_url: str = Field(description="CSMS URL without user:password")
    queued_messages: int = Field(description="transaction messages waiting for the CSMS")


class StationOut(Schema):
    status: ConnectorStatus | Literal["Unknown"] = Field(
        description="OCPP status of connector 0; Unknown: smartw never wrote it (not running)")
    estop: bool | None = Field(description="emergency stop pressed; null: unknown")
    io_online: bool | None = Field(description="the IO module answers; null: unknown")
    ocpp: OcppOut | None = Field(description="link to the CSMS; null: ocpp16 never wrote it")


class ConnectorOut(Schema):
    id: int = Field(description="connector id (OCPP connectorId), as in station.toml")
    standard: Standard
    max_power_kw: float = Field(description="rating from station.toml, kW")
    status: ConnectorStatus | Literal["Unknown"] = Field(
        description="OCPP status; Unknown: smartw never wrote it (not running)")
    error_code: ConnectorErrorCode = Field(description="OCPP errorCode while Faulted, else NoError")
    info: str = Field(description="short reason key (e.g. 'estop', 'awaiting_card', 'unavailable')")
    plugged: bool = Field(description="an EV is plugged in")
    awaiting_card: bool = Field(description="a start was asked; a card is needed at the connector")
    power_w: float = Field(description="present power, W")
    energy_wh: float = Field(description="energy of the running session, Wh (0 without one)")
    soc: float | None = Field(description="EV state of charge, %; null: not reported")
    target_soc: float | None = Field(description="EV target state of charge, %; null: not reported")
    session_id: str | None = Field(description="the running session (see /api/sessions/{session_id})")
    session_started_at: datetime | None = Field(description="when the running session started")
    transaction_id: int | None = Field(description="OCPP transactionId from the CSMS; null until known")
    updated_at: datetime | None = Field(description="when smartw wrote this state; null: never")


class StatusOut(Schema):
    station: StationOut
    connectors: list[ConnectorOut] = Field(description="every connector of station.toml, by id")
    server_time: datetime = Field(description="the station's clock when this was read")


class MeterOut(Schema):
    name: str = Field(description="'connector<N>' or 'station' (the grid meter)")
    connector_id: int | None = Field(description="the connector it measures; null: the station meter")
    model: str = Field(description="register map / model name from station.toml")
    poll_s: float = Field(description="poll period, s")
    available: bool | None = Field(description="the meter answers its polls; null: counters never said")
    reading: MeterReading | None = Field(description="latest reading; null: none fresh (the reading "
                                                     "expires 3 poll periods after the last answer)")
    age_s: float | None = Field(description="seconds since the reading was taken; null without one")
    stale: bool = Field(description="no reading, or older than 3 poll periods: do not bill from it")


# ---- sessions (from the database) -----------------------------------------------------------


class SessionOut(Schema):
    session_id: str
    connector_id: int
    standard: str
    id_tag: str = Field(description="idTag that started it ('' when started without one)")
    parent_id_tag: str = Field(description="the idTag's parent (group) when known")
    reservation_id: int | None = Field(description="the OCPP reservation it used, if any")
    started_at: datetime
    stopped_at: datetime | None = Field(description="null while it runs")
    running: bool
    duration_s: float | None = Field(description="stopped_at - started_at, s; null while it runs")
    meter_start_wh: float = Field(description="meter register at start, Wh")
    meter_stop_wh: float | None = Field(description="meter register at stop, Wh; null while it runs")
    energy_wh: float = Field(description="energy delivered, Wh")
    peak_power_w: float = Field(description="highest power seen, W")
    stop_reason: str = Field(description="OCPP Reason (Local, Remote, EVDisconnected ...); '' while it runs")
    stop_id_tag: str = Field(description="who stopped it; '' when the station did")


class SessionEventOut(Schema):
    at: datetime
    offset_s: float = Field(description="seconds since the session started")
    kind: str = Field(description="started, status, limit, fault, ev or stopped")
    detail: str = Field(description="short text for people")
    data: dict[str, Any] = Field(description="the values behind the detail")


class SessionDetailOut(SessionOut):
    events: list[SessionEventOut] = Field(description="the session's timeline, oldest first")


class SessionPage(Schema):
    count: int = Field(description="sessions matching the filters, all pages")
    limit: int
    offset: int
    items: list[SessionOut] = Field(description="newest first")


class _Input(BaseModel):
    """Requests are plain pydantic models: ninja's Schema reads any object by attribute, so a
    body of `[1]` or `"x"` would pass as "no fields given". Unknown fields are refused, so a
    misspelt `idtag` is an error, not a start without an idTag."""

    model_config = ConfigDict(extra="forbid")


class SessionQuery(_Input):
    """Filters of /api/sessions and /api/sessions.csv."""

    connector: int | None = Field(None, ge=1, le=32767, description="only this connector")
    since: AwareDatetime | None = Field(None, alias="from", description="started at or after (ISO 8601 "
                                        "with a time zone, e.g. 2026-03-01T00:00:00Z)")
    until: AwareDatetime | None = Field(None, alias="to", description="started before (ISO 8601 with a "
                                        "time zone)")
    id_tag: str | None = Field(None, min_length=1, max_length=20, description="started with this idTag")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_8601_text(cls, value: Any) -> Any:
        """pydantic would also take a number of seconds since 1970; the API documents ISO 8601."""
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise ValueError("not an ISO 8601 date and time, e.g. 2026-03-01T00:00:00Z") from None
        return value


class PageQuery(_Input):
    limit: int = Field(50, ge=1, le=500, description="sessions per page")
    offset: int = Field(0, ge=0, le=10_000_000, description="sessions to skip")


# ---- commands --------------------------------------------------------------------------------


class StartIn(_Input):
    id_tag: str | None = id_tag_field("authorise this idTag like a card; without it the station waits "
                                      "for a card at the connector (in free mode it starts at once)")


class AvailabilityIn(_Input):
    operative: StrictBool = Field(description="true: Operative; false: Inoperative (Scheduled while a "
                                              "session runs there)")


class FreeModeIn(_Input):
    enabled: StrictBool = Field(description="true: a plugged EV starts charging without a card")
    id_tag: str | None = id_tag_field("idTag free sessions start with, only with enabled: true "
                                      "(default: the last one given, at first FREEMODE)")

    @model_validator(mode="after")
    def _id_tag_goes_with_enabled(self) -> FreeModeIn:
        if self.id_tag is not None and not self.enabled:
            raise ValueError("id_tag goes with enabled: true")
        return self


class OutcomeOut(Schema):
    done: bool = Field(description="the station did it (or scheduled it)")
    status: str = Field(description="the station's answer: Accepted, Scheduled, Rejected; with 503: "
                                    "NotAnswered, NotReady, HandlerError or BusUnavailable")
    detail: str = Field(description="why, for people ('' when nothing to add)")
