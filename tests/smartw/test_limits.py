"""External power limits on the real bus: what ocpp16 and the operator publish, as smartw's
LimitReader turns it into the allocation's inputs (W, expiry on the epoch-seconds clock)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from bus import Bus, contract
from bus.contract import KeySpec
from bus.enums import Standard
from bus.messages import ChargingLimit, LimitSource
from tests.support.waiting import async_wait_until
from workers.common.station_config import ConnectorConfig, ControllerConfig, MeterConfig
from workers.smartw.limits import LimitReader, ScopeLimits
from workers.smartw.power_allocation import (
    AllocationInput,
    ConnectorInput,
    ExternalLimit,
    StationInput,
    allocate_power,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def connector(connector_id: int, standard: Standard, phases: int | None = None) -> ConnectorConfig:
    return ConnectorConfig(
        id=connector_id, standard=standard, max_power_kw=22.0, contactor_coil=connector_id,
        meter=MeterConfig(bus="meters", device_id=connector_id, model="sdm630"),
        controller=ControllerConfig(bus="controllers", device_id=20 + connector_id), phases=phases)


# connector 1: DC; 2: AC on one phase; 3 and 4: AC on three phases
STATION = (connector(1, Standard.CCS), connector(2, Standard.TYPE2, phases=1), connector(3, Standard.TYPE2),
           connector(4, Standard.TYPE2))


def limit(connector_id: int, source: LimitSource = LimitSource.OPERATOR, *, expires_in_s: float | None = None,
          **values: float) -> ChargingLimit:
    expires_at = None if expires_in_s is None else NOW + timedelta(seconds=expires_in_s)
    return ChargingLimit(connector_id=connector_id, source=source, set_at=NOW, expires_at=expires_at,
                         **values)


async def put(bus: Bus, spec: KeySpec[ChargingLimit], value: ChargingLimit) -> None:
    await bus.set(spec, value, connector_id=value.connector_id)


def put_raw(bus: Bus, redis_client: redis.Redis, name: str, text: str) -> None:
    redis_client.set(bus.names.key(name), text)


async def test_ocpp_and_operator_limits_round_trip_to_the_allocations_inputs(bus: Bus) -> None:
    await put(bus, contract.OCPP_LIMIT,
              limit(0, LimitSource.OCPP_COMPOSITE, expires_in_s=600, limit_w=90_000))
    await put(bus, contract.OPERATOR_LIMIT, limit(0, limit_w=120_000))
    await put(bus, contract.OCPP_LIMIT, limit(1, LimitSource.OCPP_TX, limit_w=40_000))
    await put(bus, contract.OPERATOR_LIMIT, limit(3, limit_w=7_000, expires_in_s=60))

    limits = await LimitReader(STATION).read(bus, now=NOW)

    expiry = (NOW + timedelta(seconds=600)).timestamp()
    assert limits.station == ScopeLimits(ExternalLimit(90_000, "ocpp_composite", expiry), 120_000)
    assert limits.connectors == {1: ScopeLimits(ExternalLimit(40_000, "ocpp_tx", None), None),
                                 2: ScopeLimits(), 3: ScopeLimits(None, 7_000), 4: ScopeLimits()}


@pytest.mark.parametrize(("scope", "values", "expected_w"), [
    (2, {"limit_a": 16}, 16 * 230),  # AC, one phase wired
    (3, {"limit_a": 16}, 16 * 3 * 230),  # AC, three phases
    (1, {"limit_a": 100}, 100 * 3 * 230),  # DC: its grid side, three phases
    (0, {"limit_a": 100}, 100 * 3 * 230),  # the station: three phases
    (3, {"limit_a": 16, "limit_w": 10_000}, 10_000),  # both given: the lower wins...
    (3, {"limit_a": 10, "limit_w": 10_000}, 10 * 3 * 230),  # ...whichever it is
])
async def test_amps_per_phase_become_watts_with_the_scopes_phases(
        bus: Bus, scope: int, values: dict[str, float], expected_w: float) -> None:
    await put(bus, contract.OPERATOR_LIMIT, limit(scope, **values))
    await put(bus, contract.OCPP_LIMIT, limit(scope, LimitSource.OCPP_TX_DEFAULT, **values))

    limits = await LimitReader(STATION).read(bus, now=NOW)

    got = limits.station if scope == 0 else limits.connectors[scope]
    assert got.operator_limit_w == pytest.approx(expected_w)
    assert got.ocpp_limit is not None and got.ocpp_limit.limit_w == pytest.approx(expected_w)


async def test_a_station_limit_caps_the_sum_and_a_connector_limit_only_its_connector(bus: Bus) -> None:
    await put(bus, contract.OPERATOR_LIMIT, limit(0, limit_w=20_000))
    await put(bus, contract.OCPP_LIMIT, limit(3, LimitSource.OCPP_TX, limit_a=10))
    ac = [ConnectorInput(cid, Standard.TYPE2, 22_000.0, demand_w=22_000.0, session_started_at=float(cid))
          for cid in (3, 4)]

    limits = await LimitReader(STATION).read(bus, now=NOW)
    result = allocate_power(AllocationInput(
        limits.apply_to_station(StationInput(100_000.0)), tuple(limits.apply_to_connector(c) for c in ac),
        now=NOW.timestamp()))

    assert result.connector(3).power_w == pytest.approx(10 * 3 * 230)
    assert result.connector(4).power_w == pytest.approx(20_000 - 10 * 3 * 230)


async def test_an_expired_limit_is_ignored_and_logged_once(bus: Bus,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    # written without a TTL, as a careless writer would
    await put(bus, contract.OPERATOR_LIMIT, limit(2, limit_w=3_000, expires_in_s=60))
    await put(bus, contract.OCPP_LIMIT, limit(2, LimitSource.OCPP_TX, limit_w=5_000, expires_in_s=600))
    reader = LimitReader(STATION)

    before = await reader.read(bus, now=NOW + timedelta(seconds=59))
    with caplog.at_level(logging.INFO, logger="workers.smartw.limits"):
        after = [await reader.read(bus, now=NOW + timedelta(seconds=s)) for s in (60, 61)]

    assert before.connectors[2].operator_limit_w == 3_000
    assert [a.connectors[2].operator_limit_w for a in after] == [None, None]
    ocpp = ExternalLimit(5_000, "ocpp_tx", NOW.timestamp() + 600)
    assert [a.connectors[2].ocpp_limit for a in after] == [ocpp, ocpp]
    assert [(r.levelno, "limit:operator:2" in r.getMessage()) for r in caplog.records] == [
        (logging.INFO, True)]


async def test_the_writers_ttl_removes_the_key_when_the_limit_expires(bus: Bus,
                                                                      redis_client: redis.Redis) -> None:
    now = datetime.now(UTC)
    short = ChargingLimit(connector_id=3, source=LimitSource.OPERATOR, limit_w=4_000, set_at=now,
                          expires_at=now + timedelta(seconds=0.3))
    await bus.set(contract.OPERATOR_LIMIT, short, ttl_s=short.ttl_s(now), connector_id=3)
    reader = LimitReader(STATION)

    assert (await reader.read(bus, now=datetime.now(UTC))).connectors[3].operator_limit_w == 4_000
    assert 0 < redis_client.pttl(bus.names.key("limit:operator:3")) <= 300

    async def gone() -> bool:
        return await bus.get(contract.OPERATOR_LIMIT, connector_id=3) is None

    await async_wait_until(gone, timeout_s=3, what="the key's TTL")
    assert (await reader.read(bus, now=datetime.now(UTC))).connectors[3] == ScopeLimits()


INVALID = "not a valid charging limit"


@pytest.mark.parametrize(("name", "text", "why"), [
    ("limit:operator:2", "{not json", INVALID),
    ("limit:operator:2", '{"connector_id": 2, "source": "operator"}', INVALID),
    ("limit:operator:2", '{"connector_id": 2, "source": "operator", "limit_w": -5}', INVALID),
    ("limit:operator:2", '{"connector_id": 2, "source": "sun", "limit_w": 5}', INVALID),
    ("limit:operator:2", '{"connector_id": 3, "source": "operator", "limit_w": 5}', "limit for connector 3"),
    ("limit:ocpp:2", '{"connector_id": 2, "source": "operator", "limit_w": 5}', "from source operator"),
    ("limit:operator:2", '{"connector_id": 2, "source": "ocpp_tx", "limit_w": 5}', "from source ocpp_tx"),
])
async def test_a_malformed_key_is_logged_once_at_error_and_the_other_limits_still_apply(
        bus: Bus, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture, name: str, text: str,
        why: str) -> None:
    put_raw(bus, redis_client, name, text)
    await put(bus, contract.OPERATOR_LIMIT, limit(0, limit_w=50_000))
    await put(bus, contract.OCPP_LIMIT, limit(3, LimitSource.OCPP_TX, limit_w=6_000))
    reader = LimitReader(STATION)

    with caplog.at_level(logging.INFO, logger="workers.smartw.limits"):
        reads = [await reader.read(bus, now=NOW) for _ in range(2)]

    for limits in reads:
        assert limits.connectors[2] == ScopeLimits()
        assert limits.station.operator_limit_w == 50_000
        assert limits.connectors[3].ocpp_limit == ExternalLimit(6_000, "ocpp_tx", None)
    assert [(r.levelno, name in r.getMessage() and why in r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, True)]


async def test_a_problem_that_comes_back_is_logged_again(bus: Bus, redis_client: redis.Redis,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    reader = LimitReader(STATION)
    with caplog.at_level(logging.ERROR, logger="workers.smartw.limits"):
        for text in ("{bad", None, "{bad"):
            if text is None:
                await bus.delete(contract.OCPP_LIMIT, connector_id=0)
            else:
                put_raw(bus, redis_client, "limit:ocpp:0", text)
            await reader.read(bus, now=NOW)

    assert len(caplog.records) == 2


async def test_every_limit_is_read_in_one_round_trip(bus: Bus, redis_client: redis.Redis) -> None:
    await put(bus, contract.OPERATOR_LIMIT, limit(1, limit_w=1_000))
    reader = LimitReader(STATION)
    redis_client.config_resetstat()

    await reader.read(bus, now=NOW)

    stats = redis_client.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 1
    assert not any(name in stats for name in ("cmdstat_get", "cmdstat_scan", "cmdstat_keys"))


async def test_get_many_keeps_the_order_and_reads_nothing_for_no_keys(bus: Bus) -> None:
    await put(bus, contract.OPERATOR_LIMIT, limit(2, limit_w=2_000))
    keys: list[tuple[KeySpec[ChargingLimit], dict[str, Any]]] = [
        (contract.OPERATOR_LIMIT, {"connector_id": 2}), (contract.OCPP_LIMIT, {"connector_id": 2})]

    reads = await bus.get_many(keys)

    assert [(r.name, r.value, r.error) for r in reads] == [
        ("limit:operator:2", limit(2, limit_w=2_000), None), ("limit:ocpp:2", None, None)]
    assert await bus.get_many([]) == []


@pytest.mark.parametrize(("fields", "message"), [
    ({}, "needs limit_w, limit_a or both"),
    ({"limit_w": -1.0}, "greater than or equal to 0"),
    ({"limit_a": float("inf")}, "finite number"),
    ({"limit_w": 1.0, "expires_at": NOW - timedelta(seconds=1)}, "is not after set_at"),
    ({"limit_w": 1.0, "expires_at": datetime(2026, 3, 1, 13, 0)}, "timezone info"),
    ({"limit_w": 1.0, "connector_id": -1}, "greater than or equal to 0"),
])
def test_a_limit_that_cannot_apply_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ChargingLimit(**{"connector_id": 1, "source": LimitSource.OPERATOR, "set_at": NOW, **fields})


def test_the_ttl_runs_to_the_expiry_and_an_expired_limit_cannot_be_written() -> None:
    timed = limit(1, limit_w=1.0, expires_in_s=90)

    assert timed.ttl_s(NOW + timedelta(seconds=30)) == 60
    assert limit(1, limit_w=1.0).ttl_s(NOW) is None
    with pytest.raises(ValueError, match="expired"):
        timed.ttl_s(NOW + timedelta(seconds=90))

