"""Drive a websocket through an ASGI app in-process, like channels.testing.WebsocketCommunicator.

channels.testing cannot be imported here: its package imports daphne (for its live-server
test case), which the station does not install. This is the same small client on asgiref's
ApplicationCommunicator, which Django ships; unlike asgiref's `wait()`, `disconnect()` fails
when the app does not stop in time instead of cancelling it quietly.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from asgiref.testing import ApplicationCommunicator


class WebsocketCommunicator(ApplicationCommunicator):
    """One websocket connection to `application` at `path`, from `origin` (default: the first
    of the kiosk's allowed origins, as the kiosk's browser sends it)."""

    def __init__(self, application: Any, path: str, origin: str | None = None) -> None:
        from django.conf import settings

        origin = origin or settings.STATION_ENV.hmi_allowed_origins[0]
        scope = {"type": "websocket", "path": path, "query_string": b"",
                 "headers": [(b"origin", origin.encode("latin-1"))], "subprotocols": []}
        super().__init__(application, scope)

    async def connect(self, timeout: float = 1) -> tuple[bool, Any]:
        """(True, subprotocol) when accepted, (False, close code) when refused."""
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        assert response["type"] == "websocket.accept", response
        return True, response.get("subprotocol")

    async def send_to(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert (text_data is None) != (bytes_data is None), "give exactly one of text_data, bytes_data"
        if text_data is not None:
            await self.send_input({"type": "websocket.receive", "text": text_data})
        else:
            await self.send_input({"type": "websocket.receive", "bytes": bytes_data})

    async def send_json_to(self, data: Any) -> None:
        await self.send_to(text_data=json.dumps(data))

    async def receive_json_from(self, timeout: float = 1) -> Any:
        """The next text frame, decoded; fails if the app sent anything else."""
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send" and "text" in response, response
        return json.loads(response["text"])

    async def disconnect(self, code: int = 1000, timeout: float = 5) -> None:
        """The client goes away; the app must finish within `timeout` (idempotent)."""
        if self._future is None or self.future.done():
            return
        await self.send_input({"type": "websocket.disconnect", "code": code})
        try:
            await asyncio.wait_for(asyncio.shield(self.future), timeout)
        except TimeoutError:
            self.future.cancel()
            raise AssertionError(f"the app did not stop within {timeout} s of the disconnect") from None
