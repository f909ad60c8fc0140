"""CALLERROR codes as OCPP-J 1.6 spells them on the wire (OCPP-J Table 7; ocpp16.md §4, §6.2).

Why this module: the `ocpp` library is shared with OCPP 2.x and uses 2.x spellings and
groupings that a strict 1.6 central system (and the compliance tool) does not accept:
it answers a schema error with `FormatViolation` (1.6: `FormationViolation`, a typo the 1.6
errata keep), has an `OccurrenceConstraintViolation` class (1.6: `OccurenceConstraintViolation`),
and answers a missing required field with `ProtocolError`. Two things here fix that:

- `schema_error_code`: which 1.6 code a JSON-schema violation of an incoming CALL gets,
  by the schema keyword that failed (protocol.py checks incoming CALLs with it);
- `in_1_6_spelling`: the one wire-level rewrite, applied to every frame leaving the
  connection (protocol.py's outgoing side), so a CALLERROR raised anywhere (a handler, the
  library's validation of our own answer) reaches the CSMS with a code OCPP-J 1.6 defines.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any


class CallErrorCode(StrEnum):
    """OCPP-J 1.6 Table 7, exact spelling."""

    NOT_IMPLEMENTED = "NotImplemented"  # the action is not known (not an OCPP 1.6 action)
    NOT_SUPPORTED = "NotSupported"  # a known action this charge point does not support
    INTERNAL_ERROR = "InternalError"
    PROTOCOL_ERROR = "ProtocolError"  # payload incomplete
    SECURITY_ERROR = "SecurityError"
    FORMATION_VIOLATION = "FormationViolation"  # syntactically wrong / not the PDU's structure
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"  # a field has an invalid value
    OCCURENCE_CONSTRAINT_VIOLATION = "OccurenceConstraintViolation"  # a field missing / too few
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"  # a field of the wrong data type
    GENERIC_ERROR = "GenericError"


# Codes the library (shared with OCPP 2.x) may produce that OCPP-J 1.6 spells differently.
_LIBRARY_SPELLINGS = {
    "FormatViolation": CallErrorCode.FORMATION_VIOLATION,
    "OccurrenceConstraintViolation": CallErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
}

# JSON-schema keyword that failed -> 1.6 code. The 1.6 schemas use exactly these keywords
# (plus `format`, which is not checked: neither the library nor we load a format checker).
# A missing required field, or too few list items, breaks the field's cardinality in the
# spec's message tables: an occurrence constraint. A CiStringN length is part of its type.
_SCHEMA_KEYWORD_CODES = {
    "required": CallErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "minItems": CallErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "type": CallErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "maxLength": CallErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "enum": CallErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "multipleOf": CallErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "additionalProperties": CallErrorCode.FORMATION_VIOLATION,
    "additionalItems": CallErrorCode.FORMATION_VIOLATION,
}
_DEFINED = frozenset(CallErrorCode)
CALLERROR = 4
CALLERROR_PREFIX = "[4,"  # how the library (compact separators) and we start a CALLERROR
CODE_INDEX = 2


def wire_code(code: Any) -> CallErrorCode:
    """The 1.6 code for any code text; one OCPP-J 1.6 does not define becomes GenericError."""
    if isinstance(code, str):
        if code in _LIBRARY_SPELLINGS:
            return _LIBRARY_SPELLINGS[code]
        if code in _DEFINED:
            return CallErrorCode(code)
    return CallErrorCode.GENERIC_ERROR


def schema_error_code(keyword: str) -> CallErrorCode:
    """The 1.6 code for a failed JSON-schema keyword (anything unlisted: FormationViolation)."""
    return _SCHEMA_KEYWORD_CODES.get(keyword, CallErrorCode.FORMATION_VIOLATION)


def in_1_6_spelling(frame: str) -> str:
    """The frame to send: a CALLERROR whose code 1.6 does not define gets the 1.6 code;
    every other frame (CALL, CALLRESULT, or a CALLERROR already right) is returned as is."""
    if not frame.startswith(CALLERROR_PREFIX):
        return frame
    message = json.loads(frame)
    code = message[CODE_INDEX]
    if wire_code(code) == code:
        return frame
    message[CODE_INDEX] = wire_code(code)
    return json.dumps(message, separators=(",", ":"), default=str)


def call_error_frame(unique_id: str, code: CallErrorCode, description: str,
                     details: dict[str, Any] | None = None) -> str:
    """A CALLERROR answering the CALL `unique_id`."""
    return json.dumps([CALLERROR, unique_id, code, description, details or {}], separators=(",", ":"))
