"""A real HTTP server that receives uploads (PUT, or a multipart POST), for the diagnostics and
log upload tests, and serves files (GET, with Range, ETag, Last-Modified and If-Range) for the
firmware download tests: it runs in a thread of the test process on a free port and records every
request; tests make it fail, refuse PUT, ask for credentials, ignore Range, leave out the
validators, serve slowly or hang up in the middle of a body."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

POLL_S = 0.05  # how soon the server notices it is asked to stop
PACED_CHUNK_BYTES = 8192


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
    ignore_range: bool = False  # GET answers 200 with the whole file even when asked for a range
    cut_after: int | None = None  # the next GET sends this many body bytes, then hangs up
    bytes_per_s: float | None = None  # GET bodies go out at about this rate (a slow link)
    etag: bool = True  # GET answers carry an ETag (strong, from the content)
    weak_etag: bool = False  # ... marked weak (W/), which a client may not send in If-Range
    last_modified: bool = True  # GET answers carry a Last-Modified (a date that changes with the content)


@dataclass
class UploadServer:
    host: str
    port: int
    behaviour: UploadBehaviour = field(default_factory=UploadBehaviour)
    received: list[Upload] = field(default_factory=list)
    attempts: int = 0
    files: dict[str, bytes] = field(default_factory=dict)  # request path -> content, for GET
    fetches: list[Upload] = field(default_factory=list)  # every GET (body empty)
    sent: int = 0  # GET body bytes written, over every GET

    def ranges(self) -> list[str | None]:
        """The Range header of every GET, in order (None: the whole file was asked for)."""
        return [fetch.headers.get("Range") for fetch in self.fetches]

    def if_ranges(self) -> list[str | None]:
        """The If-Range header of every GET, in order."""
        return [fetch.headers.get("If-Range") for fetch in self.fetches]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_PUT(self) -> None:
        self._take(put=True)

    def do_POST(self) -> None:
        self._take(put=False)

    def do_GET(self) -> None:
        state = self.server.state
        state.fetches.append(Upload(self.command, self.path, b"", dict(self.headers)))
        behaviour = state.behaviour
        content = state.files.get(self.path)
        if behaviour.failures > 0:
            behaviour.failures -= 1
            self._answer(500)
        elif behaviour.password is not None and self.headers.get("Authorization") != _basic(
                behaviour.password):
            self._answer(401)
        elif content is None:
            self._answer(404)
        else:
            validators = _validators(content, behaviour)
            ranged = not behaviour.ignore_range and _if_range_holds(self.headers, validators)
            self._serve(content, _range_start(self.headers) if ranged else None, validators)

    def _serve(self, content: bytes, start: int | None, validators: dict[str, str]) -> None:
        if start is not None and start >= len(content):
            self._answer(416, {"Content-Range": f"bytes */{len(content)}"})
            return
        self.send_response(200 if start is None else 206)
        for name, value in validators.items():
            self.send_header(name, value)
        if start is not None:
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        body = content[start or 0:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        state = self.server.state
        cut, state.behaviour.cut_after = state.behaviour.cut_after, None
        self._write_paced(body if cut is None else body[:cut], state)
        self.close_connection = True

    def _write_paced(self, body: bytes, state: UploadServer) -> None:
        """In chunks, at `bytes_per_s` when set; a client hanging up ends it quietly."""
        rate = state.behaviour.bytes_per_s
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for offset in range(0, len(body), PACED_CHUNK_BYTES):
                chunk = body[offset:offset + PACED_CHUNK_BYTES]
                self.wfile.write(chunk)
                state.sent += len(chunk)
                if rate:
                    time.sleep(len(chunk) / rate)

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

    def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:  # keep the test output quiet
        pass


class _Server(ThreadingHTTPServer):
    state: UploadServer


def _range_start(headers: Message) -> int | None:
    """The first byte of a `Range: bytes=<n>-` request (the only form the station sends)."""
    found = re.fullmatch(r"bytes=(\d+)-", headers.get("Range", ""))
    return None if found is None else int(found[1])


def _validators(content: bytes, behaviour: UploadBehaviour) -> dict[str, str]:
    """ETag and Last-Modified of this content, as the behaviour asks: both change with it."""
    digest = hashlib.sha256(content).hexdigest()
    headers = {}
    if behaviour.etag:
        headers["ETag"] = f'{"W/" if behaviour.weak_etag else ""}"{digest[:16]}"'
    if behaviour.last_modified:
        headers["Last-Modified"] = email.utils.formatdate(1_600_000_000 + int(digest[:7], 16), usegmt=True)
    return headers


def _if_range_holds(headers: Message, validators: dict[str, str]) -> bool:
    """RFC 9110 13.1.5: a Range is served only if If-Range (when sent) is the current strong
    ETag or Last-Modified; otherwise the answer is the whole file (200)."""
    if_range = headers.get("If-Range")
    if if_range is None:
        return True
    strong = [value for value in validators.values() if not value.startswith("W/")]
    return if_range in strong


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
