"""Smart Charging against a real CSMS: SetChargingProfile, ClearChargingProfile,
GetCompositeSchedule, RemoteStartTransaction with a profile, and the limits ocpp16 publishes on
the bus for smartw (contract.OCPP_LIMIT), online, offline and across a restart. ocpp16 runs as
a real process; smartw is played by the test on the real bus (its session events and START)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from bus import Bus, contract
from bus.enums import StopReason
from bus.messages import (
    ChargingLimit,
    CommandResult,
    LimitSource,
    SessionStarted,
    SessionStopped,
    StartRequest,
)
from tests.ocpp16.conftest import CHARGE_POINT_ID
from tests.support.bus_servers import serving
from tests.support.waiting import async_wait_until
from workers.ocpp16.config_keys import ConfigurationStore
from workers.ocpp16.smart_charging import SmartCharging
from workers.ocpp16.smart_charging.schedule import Scope
from workers.sim.csms import Csms

W_PER_A = 3 * 230.0  # both test connectors count three phases (CCS, and Type 2 wired 3-phase)


def wire_profile(profile_id: int, purpose: str, periods: list[tuple[int, float]], *, stack: int = 0,
                 unit: str = "A", kind: str = "Absolute", start: datetime | None = None,
                 duration: int | None = None, transaction_id: int | None = None) -> dict[str, Any]:
    schedule: dict[str, Any] = {"chargingRateUnit": unit, "chargingSchedulePeriod": [
        {"startPeriod": start_s, "limit": limit} for start_s, limit in periods]}
    if kind != "Relative":
        schedule["startSchedule"] = (start or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    if duration is not None:
        schedule["duration"] = duration
    profile = {"chargingProfileId": profile_id, "stackLevel": stack, "chargingProfilePurpose": purpose,
               "chargingProfileKind": kind, "chargingSchedule": schedule}
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return profile


async def set_profile(csms: Csms, connector_id: int, profile: dict[str, Any]) -> str:
    result = await csms.send(CHARGE_POINT_ID, call.SetChargingProfile(connector_id=connector_id,
                                                                      cs_charging_profiles=profile))
    return str(result.status)


async def clear(csms: Csms, **criteria: Any) -> str:
    return str((await csms.send(CHARGE_POINT_ID, call.ClearChargingProfile(**criteria))).status)


async def composite(csms: Csms, connector_id: int, duration: int, unit: str | None = None) -> Any:
    return await csms.send(CHARGE_POINT_ID, call.GetCompositeSchedule(
        connector_id=connector_id, duration=duration, charging_rate_unit=unit))


def limits_of(result: Any) -> list[float]:
    return [float(period["limit"]) for period in result.charging_schedule["charging_schedule_period"]]


async def raw_call(csms: Csms, action: str, payload: dict[str, Any]) -> list[Any]:
    """A CALL sent as text (so the CSMS library cannot refuse it first); returns the answer frame."""
    unique_id = f"raw-{action}-{len(csms.raw_replies)}"
    await csms.send_raw(CHARGE_POINT_ID, json.dumps([2, unique_id, action, payload]))
    return await async_wait_until(
        lambda: _raw_reply(csms, unique_id), what=f"the answer to raw {action}")


async def _raw_reply(csms: Csms, unique_id: str) -> list[Any] | None:
    return next((reply for reply in csms.raw_replies if reply[1] == unique_id), None)


async def limit_on(bus: Bus, connector_id: int) -> ChargingLimit | None:
    return await bus.get(contract.OCPP_LIMIT, connector_id=connector_id)


async def wait_limit(bus: Bus, connector_id: int, watts: float | None, timeout_s: float = 10.0,
                     ) -> ChargingLimit | None:
    async def reached() -> ChargingLimit | bool:
        limit = await limit_on(bus, connector_id)
        if watts is None:
            return limit is None
        return limit if limit is not None and limit.limit_w == pytest.approx(watts) else False
    found = await async_wait_until(reached, timeout_s=timeout_s,
                                   what=f"OCPP limit {watts} W on connector {connector_id}")
    return found if isinstance(found, ChargingLimit) else None


async def online(csms: Csms, start_ocpp16, **env: str) -> Any:
    process = start_ocpp16(csms.url, **env)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)
    return process


async def start_session(bus: Bus, csms: Csms, connector_id: int, session_id: str) -> int:
    """smartw's session start; returns the transactionId the CSMS gave."""
    await bus.publish(contract.SESSIONS, SessionStarted(session_id=session_id, connector_id=connector_id,
                                                        id_tag="CARD1", meter_start_wh=0))

    async def known() -> int | None:
        running = await bus.get(contract.OCPP_TRANSACTION, connector_id=connector_id)
        return None if running is None else running.transaction_id
    return await async_wait_until(known, what=f"transactionId of {session_id}")


async def stop_session(bus: Bus, connector_id: int, session_id: str) -> None:
    await bus.publish(contract.SESSIONS, SessionStopped(session_id=session_id, connector_id=connector_id,
                                                        meter_stop_wh=10, reason=StopReason.LOCAL))


class StartingSmartw:
    """Answers START as smartw would, recording what it was asked."""

    def __init__(self) -> None:
        self.starts: list[StartRequest] = []
        self.accept = True

    async def start(self, request: StartRequest) -> CommandResult:
        self.starts.append(request)
        return CommandResult(accepted=self.accept, reason="" if self.accept else "busy")


@pytest.fixture
async def smartw(redis_client) -> AsyncIterator[StartingSmartw]:
    fake = StartingSmartw()
    async with serving("smartw", {contract.START: fake.start}):
        yield fake


# ---- SetChargingProfile and the bus limits ----------------------------------------------------

async def test_tx_default_profile_limits_every_connector_and_the_running_transaction(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    """TC_056_CS (TxDefaultProfile), TC_082_CS (TxDefaultProfile with an ongoing transaction):
    the default applies at once to the running transaction; a connector's own default
    overrides the station-wide one; ChargePointMaxProfile goes to the station's key."""
    await online(csms, start_ocpp16)
    await start_session(bus, csms, 1, "s-default")
    assert await set_profile(csms, 0, wire_profile(1, "TxDefaultProfile", [(0, 16)])) == "Accepted"
    first = await wait_limit(bus, 1, 16 * W_PER_A)
    assert (first.source, first.expires_at) == (LimitSource.OCPP_TX_DEFAULT, None)
    await wait_limit(bus, 2, 16 * W_PER_A)

    own = wire_profile(2, "TxDefaultProfile", [(0, 5000)], unit="W")
    assert await set_profile(csms, 2, own) == "Accepted"
    await wait_limit(bus, 2, 5000)
    assert await limit_on(bus, 0) is None
    assert await set_profile(csms, 0, wire_profile(3, "ChargePointMaxProfile", [(0, 4000)], unit="W")) \
        == "Accepted"
    station = await wait_limit(bus, 0, 4000)
    assert station.source is LimitSource.OCPP_CHARGE_POINT_MAX
    connector = await wait_limit(bus, 1, 4000)  # the cap holds on each connector too
    assert connector.source is LimitSource.OCPP_CHARGE_POINT_MAX


async def test_tx_profile_needs_its_running_transaction_and_ends_with_it(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    """TC_057_CS (TxProfile), TC_058_1_CS (no ongoing transaction), TC_058_2_CS (wrong
    transactionId): Rejected unless the named transaction runs on that connector; removed
    when it ends."""
    await online(csms, start_ocpp16)
    assert await set_profile(csms, 1, wire_profile(1, "TxProfile", [(0, 10)])) == "Rejected"
    transaction_id = await start_session(bus, csms, 1, "s-tx")
    wrong = wire_profile(1, "TxProfile", [(0, 10)], transaction_id=transaction_id + 1)
    assert await set_profile(csms, 1, wrong) == "Rejected"
    assert await set_profile(csms, 0, wire_profile(1, "TxProfile", [(0, 10)])) == "Rejected"
    right = wire_profile(1, "TxProfile", [(0, 10)], transaction_id=transaction_id)
    assert await set_profile(csms, 1, right) == "Accepted"
    assert (await wait_limit(bus, 1, 10 * W_PER_A)).source is LimitSource.OCPP_TX
    assert await limit_on(bus, 2) is None

    await stop_session(bus, 1, "s-tx")
    await wait_limit(bus, 1, None)
    assert await clear(csms, id=1) == "Unknown"  # it went with its transaction


async def test_remote_start_with_a_tx_profile_limits_the_transaction_it_starts(
        bus: Bus, csms: Csms, smartw: StartingSmartw, start_ocpp16) -> None:
    """TC_059_CS (RemoteStartTransaction with a charging profile), TC_060_CS (the profile is
    not a TxProfile: Rejected, nothing started)."""
    await online(csms, start_ocpp16)
    default = wire_profile(7, "TxDefaultProfile", [(0, 8)])
    result = await csms.send(CHARGE_POINT_ID, call.RemoteStartTransaction(
        id_tag="REMOTE1", connector_id=1, charging_profile=default))
    assert (str(result.status), smartw.starts) == ("Rejected", [])

    tx = wire_profile(8, "TxProfile", [(0, 6), (600, 12)], kind="Relative")
    result = await csms.send(CHARGE_POINT_ID, call.RemoteStartTransaction(
        id_tag="REMOTE1", connector_id=1, charging_profile=tx))
    assert str(result.status) == "Accepted"
    assert [start.connector_id for start in smartw.starts] == [1]
    assert (await wait_limit(bus, 1, 6 * W_PER_A)).source is LimitSource.OCPP_TX  # before the session
    await start_session(bus, csms, 1, "s-remote")
    schedule = await composite(csms, 1, 900, "A")
    assert limits_of(schedule)[:2] == [6, 12]
    assert schedule.charging_schedule["charging_schedule_period"][1]["start_period"] in range(595, 601)

    smartw.accept = False
    refused = wire_profile(9, "TxProfile", [(0, 4)])
    result = await csms.send(CHARGE_POINT_ID, call.RemoteStartTransaction(
        id_tag="REMOTE2", connector_id=2, charging_profile=refused))
    assert str(result.status) == "Rejected"
    assert await clear(csms, id=9) == "Unknown"  # no start, no profile


# ---- GetCompositeSchedule ---------------------------------------------------------------------

async def test_composite_schedule_stacks_profiles_and_caps_them_with_the_charge_point_max(
        csms: Csms, start_ocpp16) -> None:
    """TC_066_CS (GetCompositeSchedule over three purposes), TC_072_CS (stacking profiles):
    the higher stack level until its duration ends, capped by ChargePointMaxProfile; A or W;
    connector 0 is the station's expected draw; no startSchedule inside chargingSchedule."""
    await online(csms, start_ocpp16)
    start = datetime.now(UTC).replace(microsecond=0)  # the request's X is this second or one or two later
    assert await set_profile(csms, 1, wire_profile(1, "TxDefaultProfile", [(0, 6), (100, 8), (200, 12)],
                                                   start=start, duration=400)) == "Accepted"
    assert await set_profile(csms, 1, wire_profile(2, "TxDefaultProfile", [(0, 10)], stack=1, start=start,
                                                   duration=150)) == "Accepted"
    assert await set_profile(csms, 0, wire_profile(3, "ChargePointMaxProfile", [(0, 11)], start=start,
                                                   duration=86_400)) == "Accepted"

    amps = await composite(csms, 1, 300, "A")
    assert (str(amps.status), amps.connector_id) == ("Accepted", 1)
    assert limits_of(amps) == [10, 8, 11]
    assert [p["start_period"] for p in amps.charging_schedule["charging_schedule_period"]][1:] in \
        ([150, 200], [149, 199], [148, 198])
    assert amps.charging_schedule["duration"] == 300
    assert "start_schedule" not in amps.charging_schedule
    assert abs(datetime.fromisoformat(amps.schedule_start) - datetime.now(UTC)) < timedelta(seconds=5)
    watts = await composite(csms, 1, 300, "W")
    assert limits_of(watts) == [10 * W_PER_A, 8 * W_PER_A, 11 * W_PER_A]
    station = await composite(csms, 0, 60)  # the cap (11 A) is below connector 1 + connector 2
    assert (station.charging_schedule["charging_rate_unit"], limits_of(station)) == ("A", [11])
    assert str((await composite(csms, 5, 60)).status) == "Rejected"


# ---- ClearChargingProfile ---------------------------------------------------------------------

async def test_clear_charging_profile_by_id_by_criteria_or_all(bus: Bus, csms: Csms, start_ocpp16) -> None:
    """TC_067_CS: id alone (other fields ignored); otherwise every given field must match;
    nothing matched -> Unknown; the bus limits follow."""
    await online(csms, start_ocpp16)
    for profile_id, connector, stack in ((1, 1, 0), (2, 1, 1), (3, 2, 1)):
        profile = wire_profile(profile_id, "TxDefaultProfile", [(0, 6 + profile_id)], stack=stack)
        assert await set_profile(csms, connector, profile) == "Accepted"
    await wait_limit(bus, 1, 8 * W_PER_A)
    assert await clear(csms, id=2, connector_id=2) == "Accepted"
    await wait_limit(bus, 1, 7 * W_PER_A)
    assert await clear(csms, id=2) == "Unknown"
    assert await clear(csms, connector_id=2, charging_profile_purpose="TxDefaultProfile", stack_level=0) \
        == "Unknown"
    assert await clear(csms, charging_profile_purpose="TxDefaultProfile", stack_level=1) == "Accepted"
    await wait_limit(bus, 2, None)
    assert await clear(csms) == "Accepted"
    await wait_limit(bus, 1, None)
    assert await clear(csms) == "Unknown"


# ---- bad input -----------------------------------------------------------------------------

async def test_invalid_requests_get_rejected_or_the_errata_error_codes(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    """errata 3.38/3.39: unknown connector or enum -> PropertyConstraintViolation; errata 3.24
    for GetCompositeSchedule's unit; a date that does not parse -> FormationViolation; profile
    rules -> Rejected and nothing is installed."""
    await online(csms, start_ocpp16)
    with pytest.raises(OCPPError) as unknown_connector:
        await set_profile(csms, 9, wire_profile(1, "TxDefaultProfile", [(0, 6)]))
    assert unknown_connector.value.code == "PropertyConstraintViolation"
    bad_unit = await raw_call(csms, "GetCompositeSchedule", {"connectorId": 1, "duration": 60,
                                                             "chargingRateUnit": "kW"})
    assert bad_unit[:3] == [4, bad_unit[1], "PropertyConstraintViolation"]
    bad_purpose = wire_profile(1, "TxDefaultProfile", [(0, 6)]) | {"chargingProfilePurpose": "Cheap"}
    reply = await raw_call(csms, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": bad_purpose})
    assert reply[2] == "PropertyConstraintViolation"
    bad_date = wire_profile(1, "TxDefaultProfile", [(0, 6)]) | {"validTo": "next week"}
    reply = await raw_call(csms, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": bad_date})
    assert reply[0] == 4 and reply[2] in ("FormationViolation", "FormatViolation")

    for connector, refused in (
            (1, wire_profile(1, "ChargePointMaxProfile", [(0, 6)])),
            (0, wire_profile(1, "ChargePointMaxProfile", [(0, 6)], kind="Relative")),
            (1, wire_profile(1, "TxDefaultProfile", [(5, 6)])),
            (1, wire_profile(1, "TxDefaultProfile", [(0, 6)], stack=11)),
            (1, wire_profile(1, "TxDefaultProfile", [(s, 6) for s in range(49)]))):
        assert await set_profile(csms, connector, refused) == "Rejected", refused
    assert await clear(csms) == "Unknown"
    assert await limit_on(bus, 1) is None


@pytest.mark.django_db(transaction=True)
async def test_max_charging_profiles_installed_counts_what_a_replacement_frees(bus: Bus) -> None:
    """MaxChargingProfilesInstalled (2 here, in-process): a profile that replaces another (same
    id, or same stackLevel and purpose on the connector) needs no new room."""
    config = ConfigurationStore({"MaxChargingProfilesInstalled": "2"})
    feature = SmartCharging(bus, config, Scope(0, 3, 100_000), (Scope(1, 3, 50_000),))

    async def install(profile_id: int, stack: int) -> str:
        profile = wire_profile(profile_id, "TxDefaultProfile", [(0, 6)], stack=stack)
        return str(await feature.set_profile(1, profile))
    assert [await install(1, 0), await install(2, 1), await install(3, 2)] == \
        ["Accepted", "Accepted", "Rejected"]
    assert [await install(3, 1), await install(1, 5)] == ["Accepted", "Accepted"]
    assert str(await feature.clear(None, None, None, None)) == "Accepted"


# ---- offline and after a restart ---------------------------------------------------------------

async def test_limits_follow_the_schedule_offline_and_profiles_survive_a_restart(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    """OCPP 1.6 §3.13.6 (offline: the stored profiles still apply), errata 3.37 (profiles
    persist over a reboot)."""
    process = await online(csms, start_ocpp16)
    start = datetime.now(UTC)
    profile = wire_profile(1, "TxDefaultProfile", [(0, 10), (3, 20)], start=start)
    assert await set_profile(csms, 0, profile) == "Accepted"
    first = await wait_limit(bus, 1, 10 * W_PER_A)
    assert first.expires_at is not None and first.expires_at <= start + timedelta(seconds=3.01)
    await csms.stop()
    await wait_limit(bus, 1, 20 * W_PER_A)  # the next period, reached without the CSMS

    assert await process.stopped() == 0
    await bus.delete(contract.OCPP_LIMIT, connector_id=1)
    await csms.start()
    await online(csms, start_ocpp16)
    assert (await wait_limit(bus, 1, 20 * W_PER_A)).source is LimitSource.OCPP_TX_DEFAULT
    assert limits_of(await composite(csms, 1, 60)) == [20]
