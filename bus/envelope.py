"""One envelope for stream entries, commands and replies (STYLE habit 2)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bus.enums import ReplyError
from bus.messages import utcnow


def new_id() -> str:
    return uuid.uuid4().hex


class Envelope(BaseModel):
    """Wraps every payload: who sent it, when, and a correlation id."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_id)
    origin: str
    at: datetime = Field(default_factory=utcnow)
    reply_by: datetime | None = None  # commands: when the caller stops waiting
    data: Any


class ReplyEnvelope(BaseModel):
    """Answer to a command: `data` when ok, else a closed `error` and a short detail."""

    model_config = ConfigDict(frozen=True)

    id: str
    origin: str
    at: datetime = Field(default_factory=utcnow)
    ok: bool
    error: ReplyError | None = None
    detail: str = ""
    data: Any = None


class BusRequestError(Exception):
    """A command did not get a good reply; `code` is from the closed ReplyError enum."""

    def __init__(self, command: str, code: ReplyError, detail: str = "") -> None:
        super().__init__(f"{command}: {code.value}{' - ' + detail if detail else ''}")
        self.command = command
        self.code = code
        self.detail = detail
