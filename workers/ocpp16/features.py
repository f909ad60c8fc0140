"""Where ocpp16 builds its feature objects into the context (context.py): one line per feature
profile, so adding one never touches the service loop."""

from __future__ import annotations

from django.conf import settings

from workers.ocpp16.auth.authorizer import Authorizer
from workers.ocpp16.context import ChargePointContext
from workers.ocpp16.data_transfer_client import DataTransferClient
from workers.ocpp16.diagnostics import Diagnostics
from workers.ocpp16.firmware import FirmwareUpdates
from workers.ocpp16.remote import known_parents
from workers.ocpp16.reservations import ReservationKeeper
from workers.ocpp16.reset import StationReset
from workers.ocpp16.security.feature import Security
from workers.ocpp16.session_rules import SessionRulesPublisher
from workers.ocpp16.smart_charging import SmartCharging
from workers.ocpp16.triggers import Triggers


def build_features(ctx: ChargePointContext) -> None:
    """Create each feature object, set it on `ctx` and register its background work."""
    ctx.security = Security(ctx, settings.STATION_ENV.data_dir / "certs")
    ctx.add_feature(ctx.security)
    ctx.reservations = ReservationKeeper(ctx.bus, ctx.config, ctx.settings.connector_ids)
    ctx.add_feature(ctx.reservations)
    ctx.auth = Authorizer(ctx.bus, ctx.config, ctx.notices, ctx.remote)
    ctx.add_feature(ctx.auth)
    ctx.remote.parent_of = known_parents(ctx.auth)
    ctx.add_feature(SessionRulesPublisher(ctx.bus, ctx.config))
    ctx.reset = StationReset(ctx)
    ctx.smart_charging = SmartCharging.for_station(ctx.bus, ctx.config)
    ctx.add_feature(ctx.smart_charging)
    ctx.diagnostics = Diagnostics(ctx.bus, ctx.notices)
    ctx.add_feature(ctx.diagnostics)
    ctx.firmware = FirmwareUpdates(ctx.bus, ctx.notices, ctx.security)
    ctx.add_feature(ctx.firmware)
    ctx.triggers = Triggers(ctx)  # the service attaches its boot and status parts
    ctx.add_feature(DataTransferClient(ctx.bus, ctx.config))
