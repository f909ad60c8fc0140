"""A real websocket pair in the test's event loop, for protocol-level tests of ocpp16.

One end is a scripted CSMS (a websockets server: the test sends any frame and reads the raw
answers); the other is ocpp16's own `CsmsConnection` over wsconnect's client socket, with a
`ChargePointContext` of the test's own (test Redis, test database, the real handlers and
feature objects, none of their background work). No subprocess, no CSMS library in between:
what the charge point puts on the wire is exactly what the test reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from bus import Bus
from workers.ocpp16.config_keys import ConfigurationStore
from workers.ocpp16.context import ChargePointContext
from workers.ocpp16.features import build_features
from workers.ocpp16.notices import Notices
from workers.ocpp16.protocol import CsmsConnection
from workers.ocpp16.remote import BusRemoteControl
from workers.ocpp16.settings import Ocpp16Settings
from workers.ocpp16.wsconnect import SUBPROTOCOL, OcppSocket, TransportSettings, open_connection

CHARGE_POINT_ID = "WIRE-1"
ANSWER_TIMEOUT_S = 5.0


def station_context(bus: Bus) -> ChargePointContext:
    """A registered (Accepted) charge point with two connectors, as the service builds it."""
    settings = Ocpp16Settings.build(csms_url="ws://127.0.0.1", charge_point_id=CHARGE_POINT_ID,
                                    connector_ids=(1, 2), station_name="wire pair", environ={})
    ctx = ChargePointContext(bus, settings, ConfigurationStore(settings.config_defaults),
                             Notices(lambda: 3, lambda: 1.0),
                             BusRemoteControl(bus, settings.connector_ids, lambda: True),
                             is_accepted=lambda: True, registration=lambda: "Accepted")
    build_features(ctx)
    return ctx


@dataclass
class WirePair:
    csms_end: ServerConnection
    connection: CsmsConnection
    receiving: asyncio.Task[None]

    async def send(self, frame: str) -> None:
        """A frame from the CSMS to the charge point."""
        await self.csms_end.send(frame)

    async def next_frame(self, timeout_s: float = ANSWER_TIMEOUT_S) -> Any:
        """The next frame the charge point sent, decoded."""
        return json.loads(await asyncio.wait_for(self.csms_end.recv(), timeout_s))

    @property
    def up(self) -> bool:
        return not self.receiving.done() and self.connection.is_open


@contextlib.asynccontextmanager
async def wire_pair(bus: Bus, response_timeout_s: float = ANSWER_TIMEOUT_S) -> AsyncIterator[WirePair]:
    ends: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def accept(ws: ServerConnection) -> None:
        await ends.put(ws)
        await ws.wait_closed()

    async with serve(accept, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        client = await open_connection(TransportSettings(f"ws://127.0.0.1:{port}", CHARGE_POINT_ID,
                                                         ping_interval_s=None))
        csms_end = await asyncio.wait_for(ends.get(), ANSWER_TIMEOUT_S)
        connection = CsmsConnection(OcppSocket(client), CHARGE_POINT_ID, station_context(bus),
                                    lambda: response_timeout_s)
        receiving = asyncio.create_task(connection.receive())
        try:
            yield WirePair(csms_end, connection, receiving)
        finally:
            receiving.cancel()
            await asyncio.gather(receiving, return_exceptions=True)
            await client.close()
