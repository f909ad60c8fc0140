"""Websocket routes, and the Origin check that keeps the HMI socket to the kiosk's pages.

The HMI socket starts and stops charging with no login (it is the kiosk's touch screen), so
only the kiosk's pages may open it. Browsers always send the page's Origin; a socket from any
other origin (a page on the LAN or the internet driving an operator's browser), or with no
Origin at all, is refused at the handshake, which the server answers with HTTP 403. The list is
HMI_ALLOWED_ORIGINS (webapp.env). A non-browser client can forge the header: WEB_HOST=127.0.0.1
(the default) is what keeps those off.

Not channels' OriginValidator: its refusal runs a consumer that subscribes to the channel layer
(Redis) and hangs for seconds after every refused handshake; this refusal touches nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from asgiref.typing import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, WebSocketScope
from django.conf import settings
from django.urls import path

from webapp.env import canonical_origin
from webapp.station.consumers import HmiConsumer

log = logging.getLogger(__name__)

CLOSE_POLICY_VIOLATION = 1008  # websocket close code; before accept the client sees HTTP 403


class AllowedOriginsOnly:
    """ASGI middleware for websockets: pass a socket on only when its Origin is listed."""

    def __init__(self, app: ASGI3Application, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    async def __call__(self, scope: WebSocketScope, receive: ASGIReceiveCallable,
                       send: ASGISendCallable) -> None:
        origin = _origin(scope)
        if origin is not None and canonical_origin(origin) in self.allowed:
            await self.app(scope, receive, send)
            return
        log.warning("websocket %s refused: origin %r is not in HMI_ALLOWED_ORIGINS", scope["path"], origin)
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION, "reason": None})


def _origin(scope: WebSocketScope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"origin":
            return value.decode("latin-1")
    return None


websocket_urlpatterns = [
    path("ws/hmi/", AllowedOriginsOnly(HmiConsumer.as_asgi(), settings.STATION_ENV.hmi_allowed_origins)),
]
