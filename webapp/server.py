"""The web service (`python -m webapp`): uvicorn serving webapp.asgi inside a bus.Service,
beside the loop that keeps the operator settings on the bus (settings_publisher).

The Service base class owns the process: heartbeat, signals, Redis reconnect. uvicorn is
run embedded, without its own signal handlers, and told to exit when `stopping` is set, so a
SIGTERM from chargepoint closes the listening socket, closes the HMI websockets (the pages
reconnect to the next instance) and ends with exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterator

import uvicorn
from django.conf import settings

from bus import Service
from bus.tasks import cancel_and_wait
from webapp.station.bus_state import station_config
from webapp.station.settings_publisher import keep_published

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"  # the kiosk browser runs on the station itself
GRACEFUL_SHUTDOWN_S = 5.0  # open connections get this long; below Service.stop_grace_s


class WebServiceError(RuntimeError):
    """The web service cannot serve (e.g. its port is taken)."""


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the Service base class owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen_address() -> tuple[str, int]:
    """WEB_HOST (default 127.0.0.1; 0.0.0.0 serves the configurator to the LAN) and WEB_PORT."""
    return os.environ.get("WEB_HOST", DEFAULT_HOST), settings.STATION_ENV.web_port


def bind(host: str, port: int) -> socket.socket:
    """Open the listening socket ourselves, so a taken port is our clear error, not a
    sys.exit() deep inside uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise WebServiceError(f"cannot listen on {host}:{port}: {error.strerror}") from error
    return sock


class WebService(Service):
    name = "web"

    async def run(self) -> None:
        station_config()  # a bad station.toml stops start-up here, not at the first page load
        host, port = listen_address()
        sock = bind(host, port)
        server = EmbeddedServer(uvicorn.Config(
            app="webapp.asgi:application", lifespan="off", ws="websockets-sansio",
            log_config=None, access_log=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            proxy_headers=False,
        ))
        watcher = asyncio.create_task(self._exit_when_stopping(server), name="web.stop-watcher")
        publisher = asyncio.create_task(keep_published(self.bus, self.stopping), name="web.settings")
        log.info("web service listening on http://%s:%s", host, port)
        try:
            await server.serve(sockets=[sock])
        finally:
            await cancel_and_wait([watcher, publisher])
            sock.close()

    async def _exit_when_stopping(self, server: uvicorn.Server) -> None:
        await self.stopping.wait()
        log.info("web service stopping: closing connections")
        server.should_exit = True
