"""OCPP-J frames as text: what the transport reads from one, and how one is logged.

Why its own module, and why it reads so little: frames are up to 4 MiB, and every frame in and
out passes here (open-call tracking, debug log, frame log). `frame_head` reads only the head,
`[type, "id", "action", ...`, with the JSON decoder (C, linear; no pattern here can backtrack
over a long frame), so ids and actions are parsed strings: a CSMS may write them with escapes
or non-ASCII text, and the answer the library writes back spells them differently.

`redact_frame` is the one rule for logging a frame (the debug log and the frame log): the
AuthorizationKey that a ChangeConfiguration carries is masked, decided on the parsed JSON,
so `"Authorization\\u004bey"` or any case of the key are masked too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

SECRET_KEY_NAME = "authorizationkey"  # ChangeConfiguration value masked in frame logs
SECRET_CARRIER = "ChangeConfiguration"  # the one CALL that carries it
HIDDEN = "***"
HIDDEN_FRAME = "<frame hidden: it may carry the AuthorizationKey>"
CALL = 2  # the OCPP-J message type id of a CALL (3, 4: its answers)
# The head of a frame, up to the opening quote of the message id (JSON whitespace only).
_HEAD = re.compile(r'[ \t\n\r]*\[[ \t\n\r]*([234])[ \t\n\r]*,[ \t\n\r]*(?=")')
_NEXT_STRING = re.compile(r'[ \t\n\r]*,[ \t\n\r]*(?=")')
_decoder = json.JSONDecoder()


@dataclass(frozen=True)
class FrameHead:
    """What the transport reads from a frame: its message type, message id and, for a CALL,
    its action (None if that is no string), each as parsed JSON."""

    message_type: int
    unique_id: str
    action: str | None


def _string_at(frame: str, index: int) -> tuple[str | None, int]:
    """The JSON string starting at `index` (at a quote) and where it ends; None if it is broken."""
    try:
        return _decoder.raw_decode(frame, index)
    except ValueError:
        return None, index


def frame_head(frame: str) -> FrameHead | None:
    """The head of an OCPP-J frame, `[type, "id", "action", ...`, read without looking at the
    rest; None if the frame does not start like an OCPP-J message."""
    head = _HEAD.match(frame)
    if head is None:
        return None
    unique_id, end = _string_at(frame, head.end())
    if unique_id is None:
        return None
    message_type, action = int(head.group(1)), None
    if message_type == CALL and (comma := _NEXT_STRING.match(frame, end)) is not None:
        action, _ = _string_at(frame, comma.end())
    return FrameHead(message_type, unique_id, action)


def redact_frame(frame: str) -> str:
    """The frame for a log: the value of a ChangeConfiguration(AuthorizationKey) is masked,
    decided on the parsed JSON (the key may be written with escapes, in any case). A frame
    that cannot be read and may name the key is hidden whole. Any other CALL, and every
    answer, is returned as it is after reading its head only."""
    head = frame_head(frame)
    if head is not None and (head.message_type != CALL or head.action not in (SECRET_CARRIER, None)):
        return frame
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError):
        return HIDDEN_FRAME if _may_name_the_key(frame) else frame
    if not (isinstance(message, list) and len(message) == 4 and message[0] == CALL
            and message[2] == SECRET_CARRIER):
        return frame
    payload = message[3]
    if isinstance(payload, dict) and set(payload) <= {"key", "value"} and isinstance(payload.get("key"), str):
        if payload["key"].casefold() != SECRET_KEY_NAME:
            return frame
        message[3] = {**payload, "value": HIDDEN}
    else:
        message[3] = HIDDEN
    return json.dumps(message)


def _may_name_the_key(frame: str) -> bool:
    """An unreadable frame might: it names the key, or it has escapes that could spell it."""
    return SECRET_KEY_NAME in frame.casefold() or "\\u" in frame
