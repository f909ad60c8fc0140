"""The kiosk HMI websocket (/ws/hmi/): the kiosk settings and a snapshot on connect, then live
changes, and the start/stop buttons.

Live data comes from bus streams read with `Bus.tail` (no consumer group), so every screen
sees every change; the channel layer is not used. Each socket has its own `Bus` and its own
background tasks, cancelled when the socket closes. When Redis is lost the socket is closed
(code 1011) and the page reconnects with backoff, showing its data as stale meanwhile: one
recovery path, and a fresh snapshot on the way back.

The operator's rule that Stop needs the session's card (HmiSettings.stop_needs_card) is
enforced here, not only on the page: a `stop` for a running session is refused with the reason
STOP_NEEDS_CARD, and the driver presents the card, which smartw takes as the stop (the same
card, or one of its group: workers/smartw/requests.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from pydantic import BaseModel, ValidationError

from bus import Bus, BusRequestError, Delivery, contract
from bus.contract import StreamSpec
from bus.enums import StartSource, StopReason
from bus.messages import AuthResult, ConnectorState, StartRequest, StopRequest
from bus.service import REDIS_ERRORS
from bus.tasks import cancel_and_wait
from webapp.station.bus_state import (
    read_connector,
    read_kiosk,
    read_snapshot,
    read_station,
    station_config,
    stop_needs_card,
)
from webapp.station.hmi_messages import (
    ACTION_ADAPTER,
    STOP_NEEDS_CARD,
    ActionResultPayload,
    AuthPayload,
    ConnectorPayload,
    ConnectorView,
    ErrorPayload,
    HmiAction,
    HmiErrorCode,
    KioskPayload,
    KioskView,
    SessionSummaryPayload,
    StartAction,
    StationPayload,
    StationView,
)

log = logging.getLogger(__name__)

ORIGIN = "web"
KEYS_POLL_S = 1.0
"""The station key, the OCPP link and the kiosk settings have no change stream; a change
shows within this."""
TAIL_BLOCK_MS = 1000
POSITION_BLOCK_MS = 1  # shortest XREAD block: only learn where a stream ends now
CLOSE_BUS_LOST = 1011  # websocket close code "internal error": the page reconnects
DETAIL_MAX = 200  # characters of an error's detail sent to the page
STOP_FEEDS_S = 5.0  # the feeds of a closed socket must end within this

Forward = Callable[[list[Delivery]], Awaitable[None]]


class HmiConsumer(AsyncJsonWebsocketConsumer):
    channel_layer_alias = None  # type: ignore[assignment]  # no channel layer: see module doc

    tasks: list[asyncio.Task[None]]
    shown: dict[int, ConnectorView]  # the latest view of each connector, to see a session end
    bus: Bus | None = None
    closing = False

    async def connect(self) -> None:
        self.tasks = []
        self.config = station_config()
        self.connector_ids = {connector.id: connector for connector in self.config.connectors}
        self.bus = Bus(ORIGIN)
        await self.accept()
        try:
            feeds = [(spec, *await self.bus.tail(spec, "$", block_ms=POSITION_BLOCK_MS))
                     for spec in (contract.CONNECTOR_CHANGES, contract.AUTH_RESULTS)]
            kiosk = await read_kiosk(self.bus, self.config)
            snapshot = await read_snapshot(self.bus, self.config)
        except REDIS_ERRORS as error:
            await self._bus_lost(error)
            return
        self.shown = {view.id: view for view in snapshot.connectors}
        await self.send_payload(KioskPayload(kiosk=kiosk))
        await self.send_payload(snapshot)
        forwards: dict[str, Forward] = {contract.CONNECTOR_CHANGES.name: self._forward_connectors,
                                        contract.AUTH_RESULTS.name: self._forward_auth}
        work: list[Coroutine[Any, Any, None]] = [
            self._follow(spec, position, early, forwards[spec.name]) for spec, position, early in feeds
        ]
        work.append(self._watch_keys(snapshot.station, kiosk))
        self.tasks = [asyncio.create_task(self._guard(item)) for item in work]

    async def disconnect(self, code: int) -> None:
        await self._stop_feeds()
        if self.bus is not None:
            await self.bus.close()

    async def _stop_feeds(self) -> None:
        """The feeds end with their socket (bus.tasks says why a plain cancel is not enough)."""
        if not await cancel_and_wait(self.tasks, within_s=STOP_FEEDS_S):
            log.error("HMI feeds still running after their socket closed")

    async def send_payload(self, payload: BaseModel) -> None:
        """The one sender: every message to the page is an `HmiPayload` as JSON."""
        await self.send(text_data=payload.model_dump_json())

    # ---- page -> station --------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Parse one action; anything else gets an error payload back, never a crash."""
        if text_data is None:
            await self.send_payload(ErrorPayload(code=HmiErrorCode.MALFORMED, detail="text frames only"))
            return
        try:
            action = ACTION_ADAPTER.validate_json(text_data)
        except ValidationError as error:
            await self.send_payload(_refusal(error))
            return
        if action.connector_id not in self.connector_ids:
            await self.send_payload(ErrorPayload(code=HmiErrorCode.UNKNOWN_CONNECTOR,
                                                 detail=f"no connector {action.connector_id}",
                                                 connector_id=action.connector_id))
            return
        await self._carry_out(action)

    async def _carry_out(self, action: HmiAction) -> None:
        assert self.bus is not None
        connector_id = action.connector_id
        try:
            if isinstance(action, StartAction):
                result = await self.bus.request(contract.START, StartRequest(
                    connector_id=connector_id, id_tag=None, source=StartSource.HMI))
            elif await stop_needs_card(self.bus, connector_id):
                log.info("HMI stop on connector %s refused: the session's card is needed", connector_id)
                await self.send_payload(ActionResultPayload(action="stop", connector_id=connector_id,
                                                            accepted=False, reason=STOP_NEEDS_CARD))
                return
            else:
                result = await self.bus.request(contract.STOP, StopRequest(
                    connector_id=connector_id, reason=StopReason.LOCAL))
        except BusRequestError as error:
            log.warning("HMI %s on connector %s failed: %s", action.action, connector_id, error)
            await self.send_payload(ErrorPayload(code=error.code, detail=error.detail[:DETAIL_MAX],
                                                 connector_id=connector_id))
            return
        except REDIS_ERRORS as error:
            log.error("HMI %s on connector %s: Redis unavailable: %s", action.action, connector_id, error)
            await self.send_payload(ErrorPayload(code=HmiErrorCode.BUS_UNAVAILABLE,
                                                 connector_id=connector_id))
            return
        log.info("HMI %s on connector %s: accepted=%s %s", action.action, connector_id,
                 result.accepted, result.reason)
        await self.send_payload(ActionResultPayload(action=action.action, connector_id=connector_id,
                                                    accepted=result.accepted, reason=result.reason))

    # ---- station -> page --------------------------------------------------------------

    async def _follow(self, spec: StreamSpec[Any], position: str, early: list[Delivery],
                      forward: Forward) -> None:
        """Forward a stream's entries from `position` (taken before the snapshot, so no change
        between the snapshot and the first read is lost)."""
        assert self.bus is not None
        await forward(early)
        while True:
            position, deliveries = await self.bus.tail(spec, position, block_ms=TAIL_BLOCK_MS)
            await forward(deliveries)

    async def _forward_connectors(self, deliveries: list[Delivery]) -> None:
        assert self.bus is not None
        for delivery in deliveries:
            state: ConnectorState = delivery.message
            config = self.connector_ids.get(state.connector_id)
            if config is None:
                log.warning("change for connector %s, which station.toml does not have", state.connector_id)
                continue
            view = await read_connector(self.bus, config, state)
            await self.send_payload(ConnectorPayload(connector=view))
            await self._summarise(view)

    async def _summarise(self, view: ConnectorView) -> None:
        """Send the summary of a session that this view shows ended. A view older than the one
        kept (read before the snapshot, forwarded after it) is not news: the page drops it too."""
        before = self.shown[view.id]
        if before.at and view.at and view.at < before.at:
            return
        self.shown[view.id] = view
        summary = SessionSummaryPayload.after(before, view)
        if summary is not None:
            await self.send_payload(summary)

    async def _forward_auth(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            result: AuthResult = delivery.message
            await self.send_payload(AuthPayload(connector_id=result.connector_id, status=result.status))

    async def _watch_keys(self, station_shown: StationView, kiosk_shown: KioskView) -> None:
        """Poll the keys without a change stream; send what changed. HMI_SETTINGS is rewritten
        every few seconds with a new time, so the drawn view is compared, not the message."""
        assert self.bus is not None
        while True:
            await asyncio.sleep(KEYS_POLL_S)
            station = await read_station(self.bus)
            if station != station_shown:
                await self.send_payload(StationPayload(station=station))
                station_shown = station
            kiosk = await read_kiosk(self.bus, self.config)
            if kiosk != kiosk_shown:
                await self.send_payload(KioskPayload(kiosk=kiosk))
                kiosk_shown = kiosk

    async def _guard(self, work: Coroutine[Any, Any, None]) -> None:
        """Run one background feed; on any failure close the socket so the page reconnects."""
        try:
            await work
        except REDIS_ERRORS as error:
            await self._bus_lost(error)
        except Exception:
            log.exception("HMI feed failed; closing the socket")
            await self._close_for_reconnect(None)

    async def _bus_lost(self, error: BaseException) -> None:
        log.error("HMI lost Redis (%s); closing the socket, the page reconnects", error)
        await self._close_for_reconnect(ErrorPayload(code=HmiErrorCode.BUS_UNAVAILABLE))

    async def _close_for_reconnect(self, last_word: ErrorPayload | None) -> None:
        """Close once (several feeds may fail together). A page already gone cannot be told:
        the server then refuses the send (ClientDisconnected, an OSError, or RuntimeError after
        a close), which only needs noting."""
        if self.closing:
            return
        self.closing = True
        try:
            if last_word is not None:
                await self.send_payload(last_word)
            await self.close(code=CLOSE_BUS_LOST)
        except (OSError, RuntimeError) as error:
            log.debug("HMI socket already gone while closing: %s", error)


def _refusal(error: ValidationError) -> ErrorPayload:
    """Turn a parse failure into the closed error code the page translates."""
    kinds = {problem["type"] for problem in error.errors()}
    code = HmiErrorCode.UNKNOWN_ACTION if "union_tag_invalid" in kinds else HmiErrorCode.MALFORMED
    first = error.errors()[0]
    where = ".".join(str(item) for item in first["loc"])
    return ErrorPayload(code=code, detail=f"{where}: {first['msg']}"[:DETAIL_MAX])
