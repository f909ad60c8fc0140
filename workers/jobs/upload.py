"""Uploading one file to the location an OCPP request names (GetDiagnostics, GetLog).

Why here and not in ocpp16: an upload can take minutes and must not hold up the CSMS link, so
it runs as a job (workers/jobs/diagnostics_upload.py) in the jobs service.

The location names a folder: the file goes to `<location>/<file name>`, as OCPP 1.6 §8.2 has
the Central System give "an URL where the Charge Point should upload the file" and as open
charge points do (ftp://user:password@host:port/path, user, password and port optional).
- HTTP(S): PUT of the bytes to `<location>/<file name>`; a server that refuses PUT (405, 501)
  gets a POST of a multipart/form-data form (field `file`) to the location itself. HTTPS checks
  the server's certificate against the system's trust store.
- FTP and FTPS (explicit TLS, data channel protected): login with the URL's user and password
  (anonymous without them), change to the path, STOR the file in binary mode.

Every way it can fail becomes one `UploadError` whose `failure` (bus TransferFailure) says
what the CSMS is told; passwords never reach a log line or a message (`Target.describe`).
"""

from __future__ import annotations

import base64
import ftplib
import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from bus.messages import TransferFailure

log = logging.getLogger(__name__)

SUPPORTED_SCHEMES = ("ftp", "ftps", "http", "https")  # = SupportedFileTransferProtocols
TIMEOUT_S = 30.0  # per network operation (connect, each read/write), not for the whole file
CHUNK_BYTES = 64 * 1024
PUT_REFUSED = (405, 501)  # Method Not Allowed, Not Implemented: try a form POST
PERMISSION_HTTP = (401, 403)
PERMISSION_FTP = ("530", "532")  # not logged in, need an account for storing files
CANCEL_CHECK_S = 1.0


class UploadError(Exception):
    """An upload that did not succeed; `failure` is what the CSMS hears, the text is for logs."""

    def __init__(self, failure: TransferFailure, message: str) -> None:
        super().__init__(message)
        self.failure = failure

    @property
    def retryable(self) -> bool:
        """Only a failed transfer may work on another attempt; a bad URL or refused
        credentials will not."""
        return self.failure is TransferFailure.TRANSFER_FAILED


@dataclass(frozen=True)
class Target:
    """A parsed upload location. Holds the password: log `describe()`, never the fields."""

    scheme: str
    netloc: str  # host[:port] as written, without user and password
    host: str
    port: int | None
    username: str | None
    password: str | None
    raw_path: str  # the path as written (percent-encoded), for HTTP
    path: str  # the folder, percent-decoded, without leading or trailing "/", for FTP

    def describe(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.netloc}/{self.path}"

    def http_url(self, file_name: str | None) -> str:
        """The location without credentials; with `file_name`, the file inside it."""
        base = f"{self.scheme}://{self.netloc}{self.raw_path.rstrip('/')}"
        return base if file_name is None else f"{base}/{quote(file_name)}"

    def http_headers(self) -> dict[str, str]:
        """HTTP Basic credentials when the URL carries a user (urllib ignores URL user info)."""
        if self.username is None:
            return {}
        token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


def parse_location(location: str) -> Target:
    """The location as a Target; UploadError (bad_request / unsupported_protocol) if unusable."""
    try:
        parts = urlsplit(location.strip())
        port = parts.port
    except ValueError as error:
        raise UploadError(TransferFailure.BAD_REQUEST, f"not a usable URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise UploadError(TransferFailure.UNSUPPORTED_PROTOCOL,
                          f"protocol {scheme or '(none)'!r} is not supported "
                          f"({', '.join(SUPPORTED_SCHEMES)})")
    if not parts.hostname:
        raise UploadError(TransferFailure.BAD_REQUEST, "the URL names no host")
    return Target(scheme, parts.netloc.rsplit("@", 1)[-1], parts.hostname, port,
                  unquote(parts.username) if parts.username else None,
                  unquote(parts.password) if parts.password is not None else None,
                  parts.path, unquote(parts.path).strip("/"))


def upload(path: Path, location: str, *, timeout_s: float = TIMEOUT_S) -> str:
    """Upload `path` to the location; returns where it went (no password). Raises UploadError."""
    target = parse_location(location)
    if target.scheme in ("http", "https"):
        _http(path, target, timeout_s)
    else:
        _ftp(path, target, timeout_s)
    return f"{target.describe().rstrip('/')}/{path.name}"


def upload_with_retries(path: Path, location: str, *, attempts: int, retry_interval_s: float,
                        cancelled: Callable[[], bool] = lambda: False,
                        on_failure: Callable[[int, UploadError], None] | None = None) -> str:
    """Try up to `attempts` times, waiting `retry_interval_s` between tries; a failure that
    another try cannot fix ends it at once. `cancelled()` is checked while waiting."""
    for attempt in range(1, attempts + 1):
        try:
            return upload(path, location)
        except UploadError as error:
            if on_failure is not None:
                on_failure(attempt, error)
            if not error.retryable or attempt == attempts:
                raise
        if _wait_or_cancelled(retry_interval_s, cancelled):
            raise UploadError(TransferFailure.TRANSFER_FAILED, "cancelled")
    raise AssertionError("unreachable: attempts >= 1")


def _wait_or_cancelled(seconds: float, cancelled: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if cancelled():
            return True
        time.sleep(min(CANCEL_CHECK_S, left))
    return cancelled()


# ---- HTTP(S) --------------------------------------------------------------------------------


def _http(path: Path, target: Target, timeout_s: float) -> None:
    size = path.stat().st_size
    with path.open("rb") as source:
        request = urllib.request.Request(target.http_url(path.name), data=source, method="PUT", headers={
            "Content-Type": "application/octet-stream", "Content-Length": str(size), **target.http_headers()})
        try:
            _send(request, timeout_s)
            return
        except urllib.error.HTTPError as error:
            if error.code not in PUT_REFUSED:
                raise _http_error(error) from None
            log.info("%s refused PUT (HTTP %s); posting a form", target.describe(), error.code)
        except (urllib.error.URLError, OSError) as error:
            raise _network_error(error) from None
    _post_form(path, target, timeout_s)


def _post_form(path: Path, target: Target, timeout_s: float) -> None:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{path.name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = len(head) + path.stat().st_size + len(tail)
    request = urllib.request.Request(target.http_url(None), data=_form_body(path, head, tail), method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                              "Content-Length": str(size), **target.http_headers()})
    try:
        _send(request, timeout_s)
    except urllib.error.HTTPError as error:
        raise _http_error(error) from None
    except (urllib.error.URLError, OSError) as error:
        raise _network_error(error) from None


def _form_body(path: Path, head: bytes, tail: bytes) -> Iterator[bytes]:
    yield head
    with path.open("rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            yield chunk
    yield tail


def _send(request: urllib.request.Request, timeout_s: float) -> None:
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read()


def _http_error(error: urllib.error.HTTPError) -> UploadError:
    denied = error.code in PERMISSION_HTTP
    failure = TransferFailure.PERMISSION_DENIED if denied else TransferFailure.TRANSFER_FAILED
    return UploadError(failure, f"the server answered HTTP {error.code} {error.reason}")


def _network_error(error: BaseException) -> UploadError:
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    return UploadError(TransferFailure.TRANSFER_FAILED, f"cannot reach the server: {reason}")


# ---- FTP / FTPS -----------------------------------------------------------------------------


def _ftp(path: Path, target: Target, timeout_s: float) -> None:
    client = ftplib.FTP_TLS(timeout=timeout_s) if target.scheme == "ftps" else ftplib.FTP(timeout=timeout_s)
    try:
        client.connect(target.host, target.port or ftplib.FTP_PORT)
        client.login(target.username or "anonymous", target.password or "")
        if isinstance(client, ftplib.FTP_TLS):
            client.prot_p()
        if target.path:
            client.cwd(target.path)
        with path.open("rb") as source:
            client.storbinary(f"STOR {path.name}", source, blocksize=CHUNK_BYTES)
    except ftplib.error_perm as error:
        denied = str(error)[:3] in PERMISSION_FTP
        failure = TransferFailure.PERMISSION_DENIED if denied else TransferFailure.TRANSFER_FAILED
        raise UploadError(failure, f"the FTP server refused: {error}") from None
    except (ftplib.Error, OSError, EOFError) as error:
        raise UploadError(TransferFailure.TRANSFER_FAILED, f"FTP transfer failed: {error}") from None
    finally:
        _close(client)


def _close(client: ftplib.FTP) -> None:
    try:
        client.quit()
    except (ftplib.Error, OSError, EOFError, AttributeError):
        client.close()
