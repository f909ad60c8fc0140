"""The bus against a real redis-server: keys, streams with groups, request/reply."""

from __future__ import annotations

import asyncio

import pytest

from bus import Bus, BusRequestError, contract
from bus.client import MAX_DELIVERIES
from bus.enums import ConnectorStatus, ReplyError, Standard, StartSource, StopReason
from bus.messages import (
    AuthorizeRequest,
    CardPresented,
    CommandResult,
    ConnectorState,
    SessionStarted,
    SessionStopped,
    StartRequest,
)
from tests.support.waiting import async_wait_until


async def test_key_round_trips_a_typed_state(bus: Bus) -> None:
    state = ConnectorState(connector_id=1, standard=Standard.CCS, status=ConnectorStatus.CHARGING,
                           power_w=50_000, soc=42)
    await bus.set(contract.CONNECTOR, state, connector_id=1)
    assert await bus.get(contract.CONNECTOR, connector_id=1) == state
    assert await bus.get(contract.CONNECTOR, connector_id=2) is None


async def test_key_with_ttl_expires(bus: Bus, redis_client) -> None:
    from bus.messages import Heartbeat

    await bus.set(contract.HEARTBEAT, Heartbeat(service="x", pid=1), ttl_s=0.2, service="x")
    name = bus.names.key("heartbeat:x")
    assert 0 < redis_client.pttl(name) <= 200


async def test_group_consumer_gets_events_in_order_and_unacked_ones_again(bus: Bus) -> None:
    started = SessionStarted(session_id="s1", connector_id=1, id_tag="AA", meter_start_wh=10)
    stopped = SessionStopped(session_id="s1", connector_id=1, meter_stop_wh=20, reason=StopReason.LOCAL)
    await bus.publish(contract.SESSIONS, started)
    await bus.publish(contract.SESSIONS, stopped)

    seen = []
    async for delivery in bus.consume(contract.SESSIONS, "g", "c1", block_ms=100):
        if delivery is None:
            break
        seen.append(delivery.message)
    assert seen == [started, stopped]  # not acked

    again = []
    async for delivery in bus.consume(contract.SESSIONS, "g", "c1", block_ms=100):
        if delivery is None:
            break
        again.append(delivery.message)
        await delivery.ack()
    assert again == [started, stopped]

    async for delivery in bus.consume(contract.SESSIONS, "g", "c1", block_ms=100):
        assert delivery is None
        break


async def test_malformed_entry_goes_to_dead_letter_and_is_skipped(bus: Bus, redis_client) -> None:
    stream = bus.names.stream(contract.CARDS.name)
    redis_client.xadd(stream, {"m": "{not json"})
    await bus.publish(contract.CARDS, CardPresented(uid="0A00B1C2D3"))
    got = []
    async for delivery in bus.consume(contract.CARDS, "g", "c", block_ms=100):
        if delivery is None:
            break
        got.append(delivery.message.uid)
    assert got == ["0A00B1C2D3"]
    assert redis_client.xlen(bus.names.dead_letter()) == 1


async def test_request_gets_the_handlers_reply(bus: Bus) -> None:
    stop = asyncio.Event()
    server = Bus("smartw")

    async def handler(request: StartRequest) -> CommandResult:
        return CommandResult(accepted=request.connector_id == 1, reason="ok")

    task = asyncio.create_task(server.serve(contract.START, handler, stop=stop))
    try:
        await _wait_for_group(bus, contract.START.name)
        reply = await bus.request(contract.START, StartRequest(connector_id=1, source=StartSource.HMI))
        assert reply == CommandResult(accepted=True, reason="ok")
    finally:
        stop.set()
        await task
        await server.close()


async def test_request_without_server_times_out_with_closed_error(bus: Bus) -> None:
    with pytest.raises(BusRequestError) as caught:
        await bus.request(contract.START, StartRequest(connector_id=1, source=StartSource.HMI),
                          timeout_s=0.3)
    assert caught.value.code is ReplyError.TIMEOUT


async def test_handler_crash_becomes_handler_error(bus: Bus) -> None:
    stop = asyncio.Event()
    server = Bus("smartw")

    async def handler(request: StartRequest) -> CommandResult:
        raise RuntimeError("boom")

    task = asyncio.create_task(server.serve(contract.START, handler, stop=stop))
    try:
        await _wait_for_group(bus, contract.START.name)
        with pytest.raises(BusRequestError) as caught:
            await bus.request(contract.START, StartRequest(connector_id=1, source=StartSource.HMI))
        assert caught.value.code is ReplyError.HANDLER_ERROR
    finally:
        stop.set()
        await task
        await server.close()


async def test_invalid_request_is_refused_before_sending(bus: Bus) -> None:
    with pytest.raises(BusRequestError) as caught:
        await bus.request(contract.START, {"connector_id": 0, "source": "hmi"})  # type: ignore[arg-type]
    assert caught.value.code is ReplyError.VALIDATION_FAILED


async def _wait_for_group(bus: Bus, command: str) -> None:
    stream = bus.names.command(command)

    async def has_group() -> bool:
        return bool(await bus.redis.exists(stream) and await bus.redis.xinfo_groups(stream))

    await async_wait_until(has_group, timeout_s=5, what="the server's consumer group")


async def test_a_wait_longer_than_redis_default_read_timeout_still_ends_as_bus_timeout(bus: Bus) -> None:
    """redis-py's default socket timeout (5 s) must not cut a longer command wait short."""
    with pytest.raises(BusRequestError) as caught:
        await bus.request(contract.AUTHORIZE, AuthorizeRequest(id_tag="X"), timeout_s=5.5)
    assert caught.value.code is ReplyError.TIMEOUT


async def test_after_replaying_pending_entries_the_consumer_goes_on_with_new_ones(bus: Bus) -> None:
    """A consumer restarted with unacknowledged entries replays them, then sees new events."""
    first = CardPresented(uid="0A00000001")
    await bus.publish(contract.CARDS, first)
    async for delivery in bus.consume(contract.CARDS, "g", "c", block_ms=50):
        assert delivery is not None and delivery.message == first  # read, never acked
        break

    second = CardPresented(uid="0A00000002")
    seen, published = [], False
    async for delivery in bus.consume(contract.CARDS, "g", "c", block_ms=50):
        if delivery is None:
            if published:
                break  # idle again after the new event: it was missed
            await bus.publish(contract.CARDS, second)  # published after the replay
            published = True
            continue
        seen.append(delivery.message)
        await delivery.ack()
        if len(seen) == 2:
            break
    assert seen == [first, second]


async def test_a_consumer_group_lost_with_a_redis_restart_is_recreated(bus: Bus, redis_client) -> None:
    card = CardPresented(uid="0A00000003")
    consumer = bus.consume(contract.CARDS, "g", "c", block_ms=50)
    assert await anext(consumer) is None
    redis_client.flushall()  # what a restart without persistence leaves
    assert await anext(consumer) is None  # NOGROUP handled: the group is back
    await bus.publish(contract.CARDS, card)
    delivery = await anext(consumer)
    while delivery is None:
        delivery = await anext(consumer)
    assert delivery.message == card
    await consumer.aclose()


async def test_a_command_whose_caller_gave_up_is_never_executed(bus: Bus) -> None:
    """A restarted server must not act on a 'start charging' nobody waits for any more."""
    server = Bus("smartw")
    await server._create_group(server.names.command(contract.START.name), contract.START.server, "$")
    with pytest.raises(BusRequestError):
        await bus.request(contract.START, StartRequest(connector_id=1, source=StartSource.HMI),
                          timeout_s=0.2)
    handled: list[StartRequest] = []

    async def handler(request: StartRequest) -> CommandResult:
        handled.append(request)
        return CommandResult(accepted=True)

    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(contract.START, handler, stop=stop))
    try:
        reply = await bus.request(contract.START, StartRequest(connector_id=2, source=StartSource.HMI))
        assert reply.accepted
        assert [r.connector_id for r in handled] == [2]
    finally:
        stop.set()
        await task
        await server.close()


async def test_an_entry_that_keeps_crashing_its_consumer_is_set_aside(bus: Bus, redis_client) -> None:
    """A consumer that dies on an entry every time would otherwise replay it forever."""
    poison = CardPresented(uid="0A0000DEAD")
    await bus.publish(contract.CARDS, poison)
    for _ in range(MAX_DELIVERIES):  # each 'run' reads the entry and crashes before acking it
        consumer = bus.consume(contract.CARDS, "g", "c", block_ms=50)
        assert (await anext(consumer)).message == poison
        await consumer.aclose()
    good = CardPresented(uid="0A00000004")
    await bus.publish(contract.CARDS, good)
    consumer = bus.consume(contract.CARDS, "g", "c", block_ms=50)
    delivery = await anext(consumer)
    while delivery is None:
        delivery = await anext(consumer)
    assert delivery.message == good
    await consumer.aclose()
    assert redis_client.xlen(bus.names.dead_letter()) == 1
