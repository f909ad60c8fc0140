"""Incoming OCPP-J frames: what a text is, and what a CALL is answered before any handler runs.

Why not leave it to the `ocpp` library: its parser raises on anything odd (and logs a
traceback), answers some bad CALLs with codes OCPP-J 1.6 does not define or swaps
(ocpp16.md §6.2), turns a `null` payload into an error although OCPP-J allows it, and passes
every CALLRESULT on to whichever `call()` waits next. protocol.py reads each frame here first:

- `read`: an OCPP-J message is a JSON array starting with the message type (the integer 2, 3
  or 4) and a string message id. Anything else is no message and is ignored, as OCPP-J §4.1.3
  says for unknown message types (there is no id to answer to).
- `check_call`: a CALL (type 2 with a string id) is always answered, once: a wrong shape is a
  FormationViolation, an unknown action NotImplemented, a known one without handler
  NotSupported (OCPP-J Table 7; the library has these two swapped), a schema violation the 1.6
  code of the keyword that failed (error_codes.py). A `null` payload counts as `{}`.
- `well_formed_answer`: a CALLRESULT/CALLERROR the library can digest (`null` payload as `{}`,
  a CALLERROR short of elements filled in), so a waiting `call()` fails at once with a
  CALLERROR instead of waiting for its timeout.
- `answer_violation`: why a CALLRESULT breaks the response schema of the CALL it answers.
  protocol.py checks our own CALLs and their answers here, inline, instead of letting the
  library check them on a worker thread: a thread hop per check costs more than the check of
  these small payloads, twice per CALL (ocpp16.md §6.1).

Message ids longer than the 36 characters OCPP-J allows are accepted and echoed: refusing
them would only cut the charge point off from a CSMS that uses longer ones.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from pathlib import Path
from typing import Any

import ocpp.v16
from jsonschema import Draft4Validator
from jsonschema.exceptions import best_match
from ocpp.v16.enums import Action

from workers.ocpp16.error_codes import CallErrorCode, schema_error_code

SCHEMAS = Path(ocpp.v16.__file__).parent / "schemas"
KNOWN_ACTIONS = frozenset(str(action) for action in Action)
CALL_ELEMENTS = 4  # [2, id, action, payload]
CALLERROR_ELEMENTS = 5  # [4, id, code, description, details]
MAX_DESCRIPTION_CHARS = 200  # a schema message quotes the bad value, which may be huge
# The library validates these requests with floats parsed as Decimal (so 21.4 passes
# `multipleOf: 0.1`); the check here must parse them the same way (ocpp.messages).
_DECIMAL_ACTIONS = frozenset({Action.set_charging_profile, Action.remote_start_transaction})


class MessageType(IntEnum):
    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4


_MESSAGE_TYPES = frozenset(MessageType)


@dataclass(frozen=True)
class Incoming:
    """An OCPP-J message as received: its type, id, the decoded array and the text."""

    message_type: MessageType
    unique_id: str
    elements: list[Any]
    text: str


@dataclass(frozen=True)
class Rejection:
    """A CALL answered with a CALLERROR before any handler: the 1.6 code and why."""

    code: CallErrorCode
    description: str
    details: dict[str, Any]


def read(text: str) -> Incoming | None:
    """The message in `text`; None if it is not an OCPP-J message."""
    try:
        elements = json.loads(text)
    except (json.JSONDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        return None
    if not (isinstance(elements, list) and len(elements) >= 2 and isinstance(elements[1], str)):
        return None
    kind = elements[0]
    if type(kind) is not int or kind not in _MESSAGE_TYPES:  # exactly an int: not True, not 2.0
        return None
    return Incoming(MessageType(kind), elements[1], elements, text)


def check_call(call: Incoming, has_handler: frozenset[str],
               unchecked: frozenset[str] = frozenset()) -> Rejection | str:
    """What to do with a CALL: the Rejection to answer, or the frame to hand to its handler.
    Actions in `unchecked` have handlers that opted out of schema validation (`@on(...,
    skip_schema_validation=True)`, for peers known to break the schema): no schema check."""
    if len(call.elements) != CALL_ELEMENTS or not isinstance(call.elements[2], str):
        return Rejection(CallErrorCode.FORMATION_VIOLATION,
                         "a CALL is [2, messageId, action, payload] with action a string", {})
    action, payload = call.elements[2], call.elements[3]
    if action not in KNOWN_ACTIONS:
        return Rejection(CallErrorCode.NOT_IMPLEMENTED, f"{action[:50]} is not an OCPP 1.6 action", {})
    if action not in has_handler:
        return Rejection(CallErrorCode.NOT_SUPPORTED, f"{action} is not supported by this charge point", {})
    if payload is None:  # OCPP-J allows null for "no payload" (it prefers {})
        payload = {}
    violation = None if action in unchecked else schema_violation(action, payload)
    if violation is not None:
        return violation
    if payload is call.elements[3]:
        return call.text
    return json.dumps([MessageType.CALL, call.unique_id, action, payload], separators=(",", ":"))


@functools.cache
def request_validator(action: str) -> Draft4Validator:
    """The validator of an action's 1.6 request schema (the library's schema files). Our own
    cache: the library's is keyed without the float parser, so whoever loads a schema first
    decides whether its numbers are floats or decimals."""
    parse_float = Decimal if action in _DECIMAL_ACTIONS else float
    with open(SCHEMAS / f"{action}.json", encoding="utf-8-sig") as schema:
        return Draft4Validator(json.load(schema, parse_float=parse_float))


def schema_violation(action: str, payload: Any) -> Rejection | None:
    """The Rejection for a payload that breaks the action's 1.6 request schema; None if valid."""
    subject = json.loads(json.dumps(payload), parse_float=Decimal) if action in _DECIMAL_ACTIONS else payload
    error = best_match(request_validator(action).iter_errors(subject))
    if error is None:
        return None
    return Rejection(schema_error_code(str(error.validator)),
                     f"{action}: {error.message}"[:MAX_DESCRIPTION_CHARS], {"field": error.json_path})


def answer_payload(answer: Incoming) -> Any:
    """A CALLRESULT's payload, `null` or missing read as `{}`."""
    elements = answer.elements
    return elements[2] if len(elements) > 2 and elements[2] is not None else {}


@functools.cache
def response_validator(action: str) -> Draft4Validator:
    """The validator of an action's 1.6 response schema (the answers a CSMS gives to the CALLs a
    charge point sends: none of them has a `multipleOf`, so floats parse as floats)."""
    with open(SCHEMAS / f"{action}Response.json", encoding="utf-8-sig") as schema:
        return Draft4Validator(json.load(schema))


def answer_violation(action: str, payload: Any) -> str | None:
    """Why `payload`, the CALLRESULT to our `action`, breaks its 1.6 schema; None if valid."""
    error = best_match(response_validator(action).iter_errors(payload))
    if error is None:
        return None
    return f"{action}.conf breaks the schema at {error.json_path}: {error.message}"[:MAX_DESCRIPTION_CHARS]


def well_formed_answer(answer: Incoming) -> str:
    """The CALLRESULT/CALLERROR as a frame the library parses; the text itself if it already is."""
    elements = answer.elements
    if answer.message_type is MessageType.CALLRESULT:
        fixed: list[Any] = [MessageType.CALLRESULT, answer.unique_id, answer_payload(answer)]
    else:
        padded = [*elements[2:CALLERROR_ELEMENTS], *[None] * CALLERROR_ELEMENTS][:CALLERROR_ELEMENTS - 2]
        code, description, details = padded
        fixed = [MessageType.CALLERROR, answer.unique_id,
                 code if isinstance(code, str) else CallErrorCode.GENERIC_ERROR,
                 description if isinstance(description, str) else "",
                 details if isinstance(details, dict) else {}]
    if fixed == elements:
        return answer.text
    return json.dumps(fixed, separators=(",", ":"))
