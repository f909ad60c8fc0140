"""A real HTTP server that receives uploads (PUT, or a multipart POST), for the diagnostics and
log upload tests: it runs in a thread of the test process on a free port and records every
request; tests make it fail, refuse PUT or ask for credentials."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

POLL_S = 0.05  # how soon the server notices it is asked to stop


@dataclass(frozen=True)
class Upload:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class UploadBehaviour:
    failures: int = 0  # the next N requests get HTTP 500
    refuse_put: bool = False  # PUT gets 405 (the client should POST a form)
    password: tuple[str, str] | None = None  # (user, password) required, else 401
    status: int = 201


@dataclass
class UploadServer:
    host: str
    port: int
    behaviour: UploadBehaviour = field(default_factory=UploadBehaviour)
    received: list[Upload] = field(default_factory=list)
    attempts: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_PUT(self) -> None:
        self._take(put=True)

    def do_POST(self) -> None:
        self._take(put=False)

    def _take(self, *, put: bool) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        state = self.server.state
        state.attempts += 1
        behaviour = state.behaviour
        if behaviour.failures > 0:
            behaviour.failures -= 1
            self._answer(500)
        elif behaviour.password is not None and self.headers.get("Authorization") != _basic(
                behaviour.password):
            self._answer(401)
        elif put and behaviour.refuse_put:
            self._answer(405)
        else:
            state.received.append(Upload(self.command, self.path, body, dict(self.headers)))
            self._answer(behaviour.status)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:  # keep the test output quiet
        pass


class _Server(ThreadingHTTPServer):
    state: UploadServer


def _basic(credentials: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(":".join(credentials).encode()).decode()


@pytest.fixture
def upload_server() -> Iterator[UploadServer]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = UploadServer("127.0.0.1", server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_S},
                              name="upload-server", daemon=True)
    thread.start()
    try:
        yield server.state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
