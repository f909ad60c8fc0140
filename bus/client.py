"""The async bus client: state keys, event streams with consumer groups, request/reply.

Every service and the web app talk through one `Bus`. Names and message types come from
`bus.contract`; a payload that does not validate is refused before it reaches Redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from pydantic import BaseModel, ValidationError

from bus.contract import CommandSpec, KeySpec, StreamSpec
from bus.enums import ReplyError
from bus.envelope import BusRequestError, Envelope, ReplyEnvelope
from bus.messages import utcnow
from bus.names import Names

log = logging.getLogger(__name__)

T = TypeVar("T")
Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
FIELD = "m"  # the one field of a stream entry: the envelope as JSON
SOCKET_TIMEOUT_S = 60.0  # longer than any blocking read (BLPOP waits up to a command's timeout)
MAX_DELIVERIES = 5  # a pending entry handed out more often than this is dead-lettered
REPLY_TTL_S = 30  # an unread reply list expires so a caller that gave up leaks nothing


def redis_url_from_env() -> str:
    return os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)


@dataclass(frozen=True)
class Delivery:
    """One stream entry handed to a consumer; `ack()` marks it done for the group."""

    entry_id: str
    envelope: Envelope
    message: Any
    _bus: Bus
    _stream: str
    _group: str | None

    async def ack(self) -> None:
        if self._group is not None:
            await self._bus.redis.xack(self._stream, self._group, self.entry_id)


@dataclass(frozen=True)
class KeyRead(Generic[T]):
    """One key read by `Bus.get_many`: its value (None when absent), or why the stored text is
    not a valid message (then `value` is None and `error` says why)."""

    name: str  # the key's contract name without the prefix, e.g. 'limit:ocpp:0', for log lines
    value: T | None
    error: ValidationError | None = None


class Bus:
    """Typed access to the station's Redis. One instance per process (or per event loop)."""

    def __init__(self, origin: str, redis_url: str | None = None, names: Names | None = None):
        self.origin = origin
        self.names = names or Names.from_env()
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            redis_url or redis_url_from_env(), decode_responses=True,
            socket_connect_timeout=2, socket_timeout=SOCKET_TIMEOUT_S, health_check_interval=10,
        )

    async def close(self) -> None:
        await self.redis.aclose()

    # ---- keys ---------------------------------------------------------------------

    async def set(self, spec: KeySpec[T], value: T, *, ttl_s: float | None = None,
                  **params: Any) -> None:
        checked = _validate(spec.model, value)
        ttl = ttl_s if ttl_s is not None else spec.ttl_s
        await self.redis.set(
            self.names.key(spec.format(**params)), checked.model_dump_json(),
            px=int(ttl * 1000) if ttl else None,
        )

    async def get(self, spec: KeySpec[T], **params: Any) -> T | None:
        raw = await self.redis.get(self.names.key(spec.format(**params)))
        return None if raw is None else spec.model.model_validate_json(raw)  # type: ignore[attr-defined]

    async def get_many(self, keys: Sequence[tuple[KeySpec[T], Mapping[str, Any]]]) -> list[KeyRead[T]]:
        """Read many keys in one round trip (MGET), in the order given. A stored value that does
        not validate comes back with its error instead of raising, so one writer's bug cannot
        hide the other keys; the caller decides how to report it."""
        names = [spec.format(**params) for spec, params in keys]
        if not names:
            return []
        raws = await self.redis.mget([self.names.key(name) for name in names])
        return [_key_read(spec, name, raw) for (spec, _), name, raw in zip(keys, names, raws, strict=True)]

    async def delete(self, spec: KeySpec[Any], **params: Any) -> None:
        await self.redis.delete(self.names.key(spec.format(**params)))

    # ---- streams ------------------------------------------------------------------

    async def publish(self, spec: StreamSpec[T], message: T) -> str:
        """Append an event; returns its entry id. Trimmed approximately to `spec.maxlen`."""
        checked = spec.adapter.validate_python(message)
        envelope = Envelope(origin=self.origin, data=spec.adapter.dump_python(checked, mode="json"))
        return await self.redis.xadd(
            self.names.stream(spec.name), {FIELD: envelope.model_dump_json()},
            maxlen=spec.maxlen, approximate=True,
        )

    async def ensure_group(self, spec: StreamSpec[Any], group: str) -> None:
        """Create the consumer group at the stream's start (idempotent)."""
        await self._create_group(self.names.stream(spec.name), group, "0")

    async def _create_group(self, stream: str, group: str, start_id: str) -> None:
        try:
            await self.redis.xgroup_create(stream, group, id=start_id, mkstream=True)
        except aioredis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def consume(self, spec: StreamSpec[T], group: str, consumer: str, *,
                      block_ms: int = 1000) -> AsyncIterator[Delivery | None]:
        """Yield entries for a consumer group: first this consumer's unacknowledged ones
        (left by a crash), then new ones. Yields nothing for `block_ms` when idle so the
        caller can check its stop flag; an undecodable entry goes to the dead-letter stream."""
        stream = self.names.stream(spec.name)
        await self.ensure_group(spec, group)
        cursor = "0"  # first this consumer's pending entries, from the start
        while True:
            entries = await self._read_group(stream, group, consumer, cursor, 100, block_ms, "0")
            if cursor != ">" and not entries:
                cursor = ">"  # pending replayed: from now on, new entries
                continue
            if not entries:
                yield None  # idle tick
                continue
            for entry_id, fields in entries:
                if cursor != ">" and await self._gave_up_on(stream, group, consumer, entry_id, fields):
                    continue
                delivery = await self._decode(spec, stream, group, entry_id, fields)
                if delivery is not None:
                    yield delivery
            if cursor != ">":
                cursor = entries[-1][0]  # the next pending entries after these

    async def _read_group(self, stream: str, group: str, consumer: str, cursor: str, count: int,
                          block_ms: int, start_id: str) -> list[tuple[str, dict[str, str]]]:
        """XREADGROUP; a group lost with Redis (a restart without persistence) is made again."""
        try:
            reply = await self.redis.xreadgroup(group, consumer, {stream: cursor}, count=count,
                                                block=block_ms)
        except aioredis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            log.warning("consumer group %s on %s was lost (Redis restarted?); recreating it",
                        group, stream)
            await self._create_group(stream, group, start_id)
            return []
        return reply[0][1] if reply else []

    async def tail(self, spec: StreamSpec[T], last_id: str = "$", *,
                   block_ms: int = 1000) -> tuple[str, list[Delivery]]:
        """Read entries after `last_id` without a group (live views such as the HMI)."""
        stream = self.names.stream(spec.name)
        reply = await self.redis.xread({stream: last_id}, count=100, block=block_ms)
        if not reply:
            if last_id == "$":
                info = await self.redis.xinfo_stream(stream) if await self.redis.exists(stream) else None
                last_id = info["last-generated-id"] if info else "0-0"
            return last_id, []
        deliveries = []
        for entry_id, fields in reply[0][1]:
            delivery = await self._decode(spec, stream, None, entry_id, fields)
            if delivery is not None:
                deliveries.append(delivery)
            last_id = entry_id
        return last_id, deliveries

    async def _decode(self, spec: StreamSpec[Any], stream: str, group: str | None,
                      entry_id: str, fields: dict[str, str]) -> Delivery | None:
        try:
            envelope = Envelope.model_validate_json(fields[FIELD])
            message = spec.adapter.validate_python(envelope.data)
        except (KeyError, ValidationError, ValueError) as error:
            await self._dead_letter(stream, group, entry_id, fields, f"undecodable: {error}")
            return None
        return Delivery(entry_id, envelope, message, self, stream, group)

    async def _dead_letter(self, stream: str, group: str | None, entry_id: str,
                           fields: dict[str, str], reason: str) -> None:
        """Set an entry aside (acknowledged, kept in the dead-letter stream for a technician)."""
        log.error("entry %s on %s moved to dead-letter: %s", entry_id, stream, reason)
        await self.redis.xadd(self.names.dead_letter(),
                              {"stream": stream, "entry": entry_id, "error": reason[:500],
                               "raw": str(fields)[:2000]}, maxlen=1000, approximate=True)
        if group is not None:
            await self.redis.xack(stream, group, entry_id)

    async def _gave_up_on(self, stream: str, group: str, consumer: str, entry_id: str,
                          fields: dict[str, str]) -> bool:
        """A pending entry handed out MAX_DELIVERIES times without an ack keeps crashing its
        consumer: dead-letter it, or it would block the stream after every restart."""
        pending = await self.redis.xpending_range(stream, group, min=entry_id, max=entry_id,
                                                  count=1, consumername=consumer)
        deliveries = pending[0]["times_delivered"] if pending else 0
        if deliveries <= MAX_DELIVERIES:
            return False
        await self._dead_letter(stream, group, entry_id, fields,
                                f"delivered {deliveries} times without being acknowledged")
        return True

    # ---- request/reply ------------------------------------------------------------

    async def request(self, spec: CommandSpec[Req, Rep], data: Req, *,
                      timeout_s: float | None = None) -> Rep:
        """Send a command and wait for its reply. Raises BusRequestError (never hangs)."""
        timeout = timeout_s if timeout_s is not None else spec.timeout_s
        try:
            checked = _validate(spec.request, data)
        except ValidationError as error:
            raise BusRequestError(spec.name, ReplyError.VALIDATION_FAILED, str(error)) from error
        now = utcnow()
        envelope = Envelope(origin=self.origin, at=now, reply_by=now + timedelta(seconds=timeout),
                            data=checked.model_dump(mode="json"))
        await self.redis.xadd(self.names.command(spec.name), {FIELD: envelope.model_dump_json()},
                              maxlen=1000, approximate=True)
        popped = await self.redis.blpop([self.names.reply(envelope.id)], timeout=timeout)
        if popped is None:
            raise BusRequestError(spec.name, ReplyError.TIMEOUT, f"no reply within {timeout} s")
        reply = ReplyEnvelope.model_validate_json(popped[1])
        if not reply.ok:
            raise BusRequestError(spec.name, reply.error or ReplyError.HANDLER_ERROR, reply.detail)
        return spec.reply.model_validate(reply.data)

    async def serve(self, spec: CommandSpec[Req, Rep],
                    handler: Callable[[Req], Awaitable[Rep]], *, stop: asyncio.Event,
                    max_age_s: float | None = None) -> None:
        """Answer commands until `stop` is set. A request older than its caller's timeout
        is dropped (the caller has already given up), so a restart never replays stale
        commands such as an old 'start charging'."""
        stream = self.names.command(spec.name)
        group = spec.server
        await self._create_group(stream, group, "$")
        limit = max_age_s if max_age_s is not None else spec.timeout_s
        while not stop.is_set():
            for entry_id, fields in await self._read_group(stream, group, self.origin, ">", 10, 500, "$"):
                await self._answer(spec, handler, fields, limit)
                await self.redis.xack(stream, group, entry_id)

    async def _answer(self, spec: CommandSpec[Req, Rep], handler: Callable[[Req], Awaitable[Rep]],
                      fields: dict[str, str], max_age_s: float) -> None:
        try:
            envelope = Envelope.model_validate_json(fields[FIELD])
        except (KeyError, ValidationError) as error:
            log.error("malformed %s request dropped: %s", spec.name, error)
            return
        reply_by = envelope.reply_by or envelope.at + timedelta(seconds=max_age_s)
        left_s = (reply_by - utcnow()).total_seconds()
        if left_s <= 0:
            log.warning("%s request %s expired before it was served", spec.name, envelope.id)
            return
        try:
            request = spec.request.model_validate(envelope.data)
        except ValidationError as error:
            answer = ReplyEnvelope(id=envelope.id, origin=self.origin, ok=False,
                                   error=ReplyError.VALIDATION_FAILED, detail=str(error)[:500])
        else:
            answer = await self._run_handler(spec, handler, request, envelope.id, left_s)
        key = self.names.reply(envelope.id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, answer.model_dump_json())
            pipe.expire(key, REPLY_TTL_S)
            await pipe.execute()

    async def _run_handler(self, spec: CommandSpec[Req, Rep],
                           handler: Callable[[Req], Awaitable[Rep]], request: Req,
                           request_id: str, timeout_s: float) -> ReplyEnvelope:
        """Run the handler within what is left of the caller's wait (from the request's time,
        not from when it was read), so no answer comes after the caller gave up."""
        try:
            result = await asyncio.wait_for(handler(request), timeout=timeout_s)
            data = _validate(spec.reply, result).model_dump(mode="json")
        except TimeoutError:
            return ReplyEnvelope(id=request_id, origin=self.origin, ok=False,
                                 error=ReplyError.TIMEOUT, detail="handler took too long")
        except NotReadyError as error:
            return ReplyEnvelope(id=request_id, origin=self.origin, ok=False,
                                 error=ReplyError.NOT_READY, detail=str(error))
        except Exception as error:
            log.exception("%s handler failed", spec.name)
            return ReplyEnvelope(id=request_id, origin=self.origin, ok=False,
                                 error=ReplyError.HANDLER_ERROR, detail=type(error).__name__)
        return ReplyEnvelope(id=request_id, origin=self.origin, ok=True, data=data)


class NotReadyError(Exception):
    """Raised by a command handler that cannot serve yet (e.g. hardware not polled)."""


def _key_read(spec: KeySpec[T], name: str, raw: str | None) -> KeyRead[T]:
    if raw is None:
        return KeyRead(name, None)
    try:
        return KeyRead(name, spec.model.model_validate_json(raw))  # type: ignore[attr-defined]
    except ValidationError as error:
        return KeyRead(name, None, error)


def _validate(model: type[T], value: Any) -> Any:
    if isinstance(value, model):
        return value
    return model.model_validate(value)  # type: ignore[attr-defined]
