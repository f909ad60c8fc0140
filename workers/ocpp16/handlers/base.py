"""The base every handler mixin builds on: the library's ChargePoint plus our context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocpp.v16 import ChargePoint

if TYPE_CHECKING:
    from workers.ocpp16.context import ChargePointContext


class HandlerBase(ChargePoint):
    ctx: ChargePointContext
