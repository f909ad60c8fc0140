"""Charging profiles as typed values (OCPP 1.6 §7.8-7.14), parsed from the wire in one place.

The library hands a profile over as a camelCase dict of Decimals and date strings; the rules
(validation, stacking, the composite schedule) read far better over frozen dataclasses with
aware datetimes. `parse_profile` turns wire JSON into a `ChargingProfile`; a value the schema
cannot catch (a date that does not parse) raises `WireFormatError` (FormationViolation).

Limits: the schema wants multiples of 0.1 (`multipleOf`), and some central systems send 6.25 A
(ocpp16.md §8). Such a limit is accepted and rounded DOWN to 0.1, so the station never draws
more than the CSMS asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from ocpp.v16.enums import ChargingProfileKindType as Kind
from ocpp.v16.enums import ChargingProfilePurposeType as Purpose
from ocpp.v16.enums import ChargingRateUnitType as RateUnit
from ocpp.v16.enums import RecurrencyKind as Recurrency

__all__ = ["ChargingProfile", "ChargingSchedule", "Kind", "Purpose", "RateUnit", "Recurrency",
           "RunningTransaction", "SchedulePeriod", "WireFormatError", "anchored_at_receipt", "parse_profile",
           "parse_time", "tenths_down", "wire_time"]

TENTH = Decimal("0.1")


class WireFormatError(ValueError):
    """A field that passed the schema but cannot be read (e.g. a date that does not parse)."""


@dataclass(frozen=True)
class SchedulePeriod:
    start_s: int  # from the schedule's start, seconds
    limit: float  # in the schedule's unit: A per phase, or W
    number_phases: int | None = None  # None: 3 (OCPP 1.6 §7.13)


@dataclass(frozen=True)
class ChargingSchedule:
    unit: RateUnit
    periods: tuple[SchedulePeriod, ...]
    duration_s: int | None = None  # None: the last period holds forever
    start: datetime | None = None  # startSchedule
    min_rate: float | None = None


@dataclass(frozen=True)
class ChargingProfile:
    """One installed (or offered) profile; `connector_id` is where it was set (0: station)."""

    profile_id: int
    connector_id: int
    stack_level: int
    purpose: Purpose
    kind: Kind
    schedule: ChargingSchedule
    recurrency: Recurrency | None = None
    transaction_id: int | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None


@dataclass(frozen=True)
class RunningTransaction:
    """The OCPP transaction on a connector, as the Transaction table has it."""

    connector_id: int
    session_id: str
    started_at: datetime
    transaction_id: int | None  # None until StartTransaction.conf


def parse_time(text: str) -> datetime:
    """An OCPP date-time as an aware UTC datetime (a time without zone is taken as UTC)."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise WireFormatError(f"{text!r} is not an ISO 8601 date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def wire_time(moment: datetime) -> str:
    """UTC with milliseconds and `Z` (ocpp16.md §8)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def tenths_down(value: Any) -> float:
    """`value` rounded down to a multiple of 0.1 (exact: through Decimal)."""
    return float(Decimal(str(value)).quantize(TENTH, rounding=ROUND_FLOOR))


def _optional_time(wire: Mapping[str, Any], name: str) -> datetime | None:
    text = wire.get(name)
    return None if text is None else parse_time(text)


def _period(wire: Mapping[str, Any]) -> SchedulePeriod:
    return SchedulePeriod(start_s=int(wire["startPeriod"]), limit=tenths_down(wire["limit"]),
                          number_phases=wire.get("numberPhases"))


def _schedule(wire: Mapping[str, Any]) -> ChargingSchedule:
    minimum = wire.get("minChargingRate")
    return ChargingSchedule(
        unit=RateUnit(wire["chargingRateUnit"]),
        periods=tuple(_period(period) for period in wire["chargingSchedulePeriod"]),
        duration_s=wire.get("duration"), start=_optional_time(wire, "startSchedule"),
        min_rate=None if minimum is None else tenths_down(minimum))


def parse_profile(wire: Mapping[str, Any], connector_id: int) -> ChargingProfile:
    """A schema-valid csChargingProfiles / chargingProfile object (camelCase) as a profile."""
    recurrency = wire.get("recurrencyKind")
    return ChargingProfile(
        profile_id=int(wire["chargingProfileId"]), connector_id=connector_id,
        stack_level=int(wire["stackLevel"]), purpose=Purpose(wire["chargingProfilePurpose"]),
        kind=Kind(wire["chargingProfileKind"]), schedule=_schedule(wire["chargingSchedule"]),
        recurrency=None if recurrency is None else Recurrency(recurrency),
        transaction_id=wire.get("transactionId"), valid_from=_optional_time(wire, "validFrom"),
        valid_to=_optional_time(wire, "validTo"))


def anchored_at_receipt(profile: ChargingProfile, wire: Mapping[str, Any],
                        now: datetime) -> tuple[ChargingProfile, dict[str, Any]]:
    """An Absolute ChargePointMaxProfile without startSchedule starts when it is received: there
    is no transaction to be relative to (§7.12). The wire copy gets that startSchedule too, so
    the stored profile keeps its start over a reboot. Any other profile is returned as it is."""
    if not (profile.purpose is Purpose.charge_point_max_profile and profile.kind is Kind.absolute
            and profile.schedule.start is None):
        return profile, dict(wire)
    started = replace(profile, schedule=replace(profile.schedule, start=now))
    schedule = {**wire["chargingSchedule"], "startSchedule": wire_time(now)}
    return started, {**wire, "chargingSchedule": schedule}
