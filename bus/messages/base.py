"""The base of every bus payload, and the one clock the bus uses."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict


def utcnow() -> datetime:
    """Aware UTC timestamp: every time on the bus is UTC (OCPP wants `Z` times)."""
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every bus payload: frozen, unknown fields rejected so typos fail loudly."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Empty(Message):
    """A request without parameters."""
