"""External power limits (OCPP composite schedule, operator) that smartw obeys."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, Field, model_validator

from bus.messages.base import Message, utcnow

MIN_KEY_TTL_S = 0.001  # Redis' shortest expiry (PX 1); a shorter one is an error, not a TTL


class LimitSource(StrEnum):
    """Where an external power limit comes from: an OCPP 1.6 charging profile purpose (or the
    composite schedule of every active profile), or the station's operator."""

    OCPP_TX_DEFAULT = "ocpp_tx_default"  # TxDefaultProfile
    OCPP_TX = "ocpp_tx"  # TxProfile
    OCPP_CHARGE_POINT_MAX = "ocpp_charge_point_max"  # ChargePointMaxProfile
    OCPP_COMPOSITE = "ocpp_composite"  # the composite of every profile that applies
    OPERATOR = "operator"  # the configurator or `manage.py limit`

    @property
    def is_ocpp(self) -> bool:
        return self is not LimitSource.OPERATOR


class ChargingLimit(Message):
    """A ceiling on what one connector (or the whole station) may draw, set from outside smartw.

    One key per writer (OCPP_LIMIT, OPERATOR_LIMIT), so they never overwrite each other; smartw
    applies the lowest active one. A writer gives the key the TTL `ttl_s()` too, so the limit
    disappears at `expires_at` even when its writer died before clearing it.
    """

    connector_id: int = Field(ge=0, description="connector N; 0: the whole station")
    limit_w: float | None = Field(default=None, ge=0, allow_inf_nan=False,
                                  description="total active power, W")
    limit_a: float | None = Field(default=None, ge=0, allow_inf_nan=False, description=(
        "current per phase, A; smartw counts an AC connector's wired phases x 230 V, a DC connector "
        "and the station 3 x 230 V (their grid side); with limit_w too, the lower wins"))
    source: LimitSource
    expires_at: AwareDatetime | None = Field(default=None, description="when it stops applying "
                                             "(UTC); None: until replaced or cleared")
    set_at: AwareDatetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _a_limit_that_can_apply(self) -> ChargingLimit:
        if self.limit_w is None and self.limit_a is None:
            raise ValueError("a charging limit needs limit_w, limit_a or both")
        if self.expires_at is not None and self.expires_at <= self.set_at:
            raise ValueError(f"expires_at {self.expires_at} is not after set_at {self.set_at}")
        return self

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at

    def ttl_s(self, now: datetime) -> float | None:
        """Seconds the key should live: until `expires_at` (None: no expiry). A limit that has
        already expired is refused, never written."""
        if self.expires_at is None:
            return None
        left_s = (self.expires_at - now).total_seconds()
        if left_s <= 0:
            raise ValueError(f"the limit expired at {self.expires_at}, it cannot be written")
        return max(left_s, MIN_KEY_TTL_S)
