"""`manage.py limit set|clear|show`: the operator's limit on the bus (message, TTL), what `show`
prints, and the exit codes (run as real processes where the exit code is the point). The
station is ops/station.sim.toml: connector 1 CCS, connector 2 Type2."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from datetime import timedelta

import pytest
import redis
from django.core.management import call_command

from bus import Bus, contract
from bus.messages import ChargingLimit, LimitSource, utcnow
from bus.names import Names
from webapp.env import REPO_ROOT
from workers.common.redis_server import free_port


def limit_cmd(*args: str) -> str:
    out = io.StringIO()
    call_command("limit", *args, stdout=out)
    return out.getvalue().strip()


def stored(redis_client: redis.Redis, scope: int) -> ChargingLimit | None:
    raw = redis_client.get(Names.from_env().key(f"limit:operator:{scope}"))
    return None if raw is None else ChargingLimit.model_validate_json(raw)


def ttl_ms(redis_client: redis.Redis, scope: int) -> int:
    return redis_client.pttl(Names.from_env().key(f"limit:operator:{scope}"))


def put_ocpp(value: ChargingLimit) -> None:
    async def write() -> None:
        bus = Bus("ocpp16")
        try:
            await bus.set(contract.OCPP_LIMIT, value, ttl_s=value.ttl_s(utcnow()),
                          connector_id=value.connector_id)
        finally:
            await bus.close()

    asyncio.run(write())


def test_set_with_an_expiry_writes_the_message_and_the_ttl(redis_client: redis.Redis) -> None:
    before = utcnow()

    printed = limit_cmd("set", "--connector", "2", "--amps", "16", "--for", "120")

    limit = stored(redis_client, 2)
    assert limit is not None and (limit.connector_id, limit.limit_w, limit.limit_a, limit.source) == (
        2, None, 16.0, LimitSource.OPERATOR)
    assert limit.expires_at is not None
    assert before + timedelta(seconds=120) <= limit.expires_at <= utcnow() + timedelta(seconds=120)
    assert 118_000 < ttl_ms(redis_client, 2) <= 120_000
    assert printed.startswith("operator limit on connector 2: 16 A/phase, until ")


def test_set_without_an_expiry_holds_until_cleared(redis_client: redis.Redis) -> None:
    limit_cmd("set", "--station", "--kw", "50", "--for", "30")

    printed = limit_cmd("set", "--station", "--kw", "42.5")

    limit = stored(redis_client, 0)
    assert limit is not None and (limit.limit_w, limit.expires_at) == (42_500.0, None)
    assert ttl_ms(redis_client, 0) == -1  # the earlier TTL went with the earlier limit
    assert printed == "operator limit on station: 42.5 kW, until cleared"

    assert limit_cmd("clear", "--station") == "operator limit on station cleared"
    assert stored(redis_client, 0) is None


def test_show_lists_every_limit_in_force_with_source_and_expiry(redis_client: redis.Redis) -> None:
    now = utcnow()
    put_ocpp(ChargingLimit(connector_id=1, source=LimitSource.OCPP_TX, limit_w=40_000, set_at=now,
                           expires_at=now + timedelta(seconds=600)))
    limit_cmd("set", "--station", "--kw", "100")
    limit_cmd("set", "--connector", "2", "--amps", "16", "--for", "60")
    redis_client.set(Names.from_env().key("limit:ocpp:2"), ChargingLimit(  # expired, TTL not yet run out
        connector_id=2, source=LimitSource.OCPP_TX, limit_w=1, set_at=now - timedelta(seconds=60),
        expires_at=now - timedelta(seconds=1)).model_dump_json())

    lines = limit_cmd("show").splitlines()

    assert lines[0].split() == ["scope", "source", "limit", "expires"]
    assert [line.split()[:5] for line in lines[1:]] == [
        ["station", "operator", "100", "kW", "never"],
        ["connector", "1", "ocpp_tx", "40", "kW"],
        ["connector", "2", "operator", "16", "A/phase"],
    ]
    assert lines[2].endswith("(in 600 s)") or lines[2].endswith("(in 599 s)")


def test_show_says_so_when_there_is_no_limit_and_names_an_invalid_key(redis_client: redis.Redis) -> None:
    assert limit_cmd("show") == "no limit in force"

    redis_client.set(Names.from_env().key("limit:operator:1"), '{"connector_id": 1, "source": "operator"}')

    assert "limit:operator:1: not a valid limit, smartw ignores it" in limit_cmd("show")


def run_limit(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "manage.py", "limit", *args], cwd=REPO_ROOT,
                            env=env or dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


BAD_USAGE = [
    (("set", "--station", "--connector", "1", "--kw", "5"), "not allowed with argument --station"),
    (("set", "--kw", "5"), "one of the arguments --station --connector is required"),
    (("set", "--station"), "one of the arguments --kw --amps is required"),
    (("set", "--station", "--kw", "5", "--amps", "6"), "not allowed with argument --kw"),
    (("set", "--station", "--kw", "-1"), "-1 must be >= 0"),
    (("set", "--station", "--amps", "lots"), "'lots' is not a number"),
    (("set", "--station", "--kw", "inf"), "'inf' is not a finite number"),
    (("set", "--station", "--kw", "5", "--for", "0"), "0 must be > 0 seconds"),
    (("set", "--connector", "9", "--kw", "5"), "unknown connector 9 (station.toml has [1, 2, 3, 4]"),
    (("clear", "--connector", "0"), "unknown connector 0"),
    (("reset",), "invalid choice: 'reset'"),
]


def test_bad_usage_exits_2_with_the_reason_and_writes_nothing(redis_client: redis.Redis) -> None:
    runs = [(args, why, run_limit(*args)) for args, why in BAD_USAGE]  # side by side: each is a process

    for args, why, process in runs:
        stdout, stderr = process.communicate(timeout=60)
        assert (process.returncode, why in stderr) == (2, True), (args, stdout, stderr)
    assert redis_client.keys("*") == []


@pytest.mark.parametrize("args", [("show",), ("set", "--station", "--kw", "5"), ("clear", "--station")])
def test_no_bus_exits_1(args: tuple[str, ...]) -> None:
    process = run_limit(*args, env={**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})

    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 1 and "cannot reach the bus (Redis)" in stderr, stderr
