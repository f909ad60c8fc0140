"""Where ocpp16 builds its feature objects into the context (context.py): one line per feature
profile, so adding one never touches the service loop."""

from __future__ import annotations

from workers.ocpp16.context import ChargePointContext


def build_features(ctx: ChargePointContext) -> None:
    """Create each feature object, set it on `ctx` and register its background work."""
