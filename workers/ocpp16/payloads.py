"""OCPP 1.6 payloads built from bus events, as the JSON the CSMS receives (camelCase).

Transaction messages are stored in the outbox in this wire form, so what is queued is exactly
what is sent (after the transactionId is filled in). Energy is always integer Wh from the
meter's lifetime register (ocpp16.md §8: no kWh, no per-session counter); times are UTC with
`Z` and milliseconds.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaValidationError
from ocpp.charge_point import camel_to_snake_case
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, validate_payload
from ocpp.v16 import call
from ocpp.v16.enums import Action

from bus.messages import SessionStarted, SessionStopped

Payload = dict[str, Any]
OCPP_VERSION = "1.6"
TRANSACTION_ID = "transactionId"


class InvalidPayload(ValueError):
    """A payload we built does not conform to the OCPP 1.6 schema (e.g. an idTag > 20 chars)."""


def ocpp_time(moment: datetime) -> str:
    """`2024-01-01T12:00:00.000Z`: UTC, milliseconds, `Z` (naive times are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def wh(value: float) -> int:
    """Energy as the integer Wh OCPP wants for meterStart/meterStop."""
    return round(value)


def start_transaction(event: SessionStarted) -> Payload:
    """StartTransaction; with the reservationId when the session used a reservation (§5.13)."""
    payload: Payload = {"connectorId": event.connector_id, "idTag": event.id_tag,
                        "meterStart": wh(event.meter_start_wh), "timestamp": ocpp_time(event.at)}
    if event.reservation_id is not None:
        payload["reservationId"] = event.reservation_id
    return payload


def stop_transaction(event: SessionStopped, transaction_id: int | None) -> Payload:
    """StopTransaction; without a known transactionId the outbox fills it in before sending
    (its transactionData is added by transaction_data.py)."""
    payload: Payload = {"meterStop": wh(event.meter_stop_wh), "timestamp": ocpp_time(event.at),
                        "reason": str(event.reason)}
    if event.id_tag:
        payload["idTag"] = event.id_tag
    if transaction_id is not None:
        payload[TRANSACTION_ID] = transaction_id
    return payload


def meter_value(at: datetime, sampled: list[Payload]) -> Payload:
    """One MeterValue: the SampledValues (measurands.py) taken at `at`; periodic and
    clock-aligned ones carry their boundary, not the moment the meter was read."""
    return {"timestamp": ocpp_time(at), "sampledValue": sampled}


def meter_values(connector_id: int, transaction_id: int | None, entries: list[Payload]) -> Payload:
    """MeterValues; without a transactionId for connector 0 and outside a transaction (a queued
    message of a running session gets its id from the queue once StartTransaction's answer
    brings it)."""
    payload: Payload = {"connectorId": connector_id, "meterValue": entries}
    if transaction_id is not None:
        payload[TRANSACTION_ID] = transaction_id
    return payload


def needs_transaction_id(action: str, session_id: str) -> bool:
    """Messages of a session after its StartTransaction carry the CSMS's transactionId."""
    return bool(session_id) and action != Action.start_transaction


def to_call(action: str, payload: Payload) -> Any:
    """The library's request dataclass for a stored wire payload."""
    return getattr(call, action)(**camel_to_snake_case(payload))


async def check(action: str, payload: Payload) -> None:
    """Raise InvalidPayload when the CSMS would refuse the payload by schema: checked before it
    is queued, so a bad message is reported at once and never blocks the queue."""
    probe = dict(payload)
    if action == Action.stop_transaction:  # required; the real one may be filled in later
        probe.setdefault(TRANSACTION_ID, -1)
    try:
        await validate_payload(Call(str(uuid.uuid4()), action, probe), OCPP_VERSION)
    except OCPPError as error:
        schema_error = error.__cause__ or error.__context__
        where = schema_error.json_path if isinstance(schema_error, SchemaValidationError) else "$"
        raise InvalidPayload(f"{action} {where}: {error.details.get('cause', error.description)}") from error
