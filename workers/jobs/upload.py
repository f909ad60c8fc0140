"""Uploading one file to the location an OCPP request names (GetDiagnostics, GetLog).

Why here and not in ocpp16: an upload can take minutes and must not hold up the CSMS link, so
it runs as a job (workers/jobs/diagnostics_upload.py) in the jobs service.

The location names a folder: the file goes to `<location>/<file name>`, as OCPP 1.6 §8.2 has
the Central System give "an URL where the Charge Point should upload the file" and as open
charge points do (ftp://user:password@host:port/path, user, password and port optional).
- HTTP(S): PUT of the bytes to `<location>/<file name>`; a server that refuses PUT (405, 501)
  gets a POST of a multipart/form-data form (field `file`) to the location itself.
- FTP and FTPS (explicit TLS, data channel protected): login with the URL's user and password
  (anonymous without them), change to the path, STOR the file in binary mode. With `resume`
  (a job run again after a power cut, or another attempt) it asks the SIZE of the file the
  server already holds and sends the rest: REST <size> then STOR (RFC 3659).
  HTTP(S) always starts over: there is no standard resumable PUT (RFC 9110 §14.5 forbids a
  PUT with Content-Range unless both ends agree on it out of band).
- TLS (HTTPS, FTPS) checks the server's certificate and host name against the system's trust
  store, or by the caller's `ssl_context`; an untrusted server is not tried again.

Every way it can fail becomes one `UploadError` whose `failure` (bus TransferFailure) says
what the CSMS is told; passwords never reach a log line or a message (`Target.describe`).
"""

from __future__ import annotations

import base64
import ftplib
import logging
import ssl
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


class TransferError(Exception):
    """A transfer (upload or download) that did not succeed; `failure` is what the CSMS hears,
    the text is for logs."""

    def __init__(self, failure: TransferFailure, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.failure = failure
        self.final = final  # another attempt cannot help (an untrusted certificate)

    @property
    def retryable(self) -> bool:
        """Only a failed transfer may work on another attempt; a bad URL or refused
        credentials will not."""
        return self.failure is TransferFailure.TRANSFER_FAILED and not self.final


class UploadError(TransferError):
    """An upload that did not succeed (and a location parse_location refuses)."""


@dataclass(frozen=True)
class Target:
    """A parsed transfer location. Holds the password: log `describe()`, never the fields."""

    scheme: str
    netloc: str  # host[:port] as written, without user and password
    host: str
    port: int | None
    username: str | None
    password: str | None
    raw_path: str  # the path as written (percent-encoded), for HTTP
    path: str  # the folder, percent-decoded, without leading or trailing "/", for FTP
    query: str = ""  # after "?", as written (a download link may carry a token), for HTTP

    def describe(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.netloc}/{self.path}"

    def http_url(self, file_name: str | None) -> str:
        """The location without credentials; with `file_name`, the file inside it."""
        base = f"{self.scheme}://{self.netloc}{self.raw_path.rstrip('/')}"
        if file_name is None:
            return f"{base}?{self.query}" if self.query else base
        return f"{base}/{quote(file_name)}"

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
                  parts.path, unquote(parts.path).strip("/"), parts.query)


def upload(path: Path, location: str, *, timeout_s: float = TIMEOUT_S, resume: bool = False,
           ssl_context: ssl.SSLContext | None = None) -> str:
    """Upload `path` to the location; returns where it went (no password). Raises UploadError.
    `resume`: over FTP(S), continue the file the server holds under the same name (only for a
    name nobody else writes); `ssl_context`: how to check a TLS server (default: the system's
    trust store, host name checked)."""
    target = parse_location(location)
    context = ssl_context or ssl.create_default_context()
    if target.scheme in ("http", "https"):
        _http(path, target, timeout_s, context)
    else:
        _ftp(path, target, timeout_s, context, resume=resume)
    return f"{target.describe().rstrip('/')}/{path.name}"


def upload_with_retries(path: Path, location: str, *, attempts: int, retry_interval_s: float,
                        cancelled: Callable[[], bool] = lambda: False,
                        on_failure: Callable[[int, UploadError], None] | None = None,
                        resume: bool = False, ssl_context: ssl.SSLContext | None = None) -> str:
    """Try up to `attempts` times, waiting `retry_interval_s` between tries; a failure that
    another try cannot fix ends it at once. `cancelled()` is checked while waiting."""
    for attempt in range(1, attempts + 1):
        try:
            return upload(path, location, resume=resume, ssl_context=ssl_context)
        except UploadError as error:
            if on_failure is not None:
                on_failure(attempt, error)
            if not error.retryable or attempt == attempts:
                raise
        if wait_or_cancelled(retry_interval_s, cancelled):
            raise UploadError(TransferFailure.TRANSFER_FAILED, "cancelled")
    raise AssertionError("unreachable: attempts >= 1")


def wait_or_cancelled(seconds: float, cancelled: Callable[[], bool]) -> bool:
    """Sleep `seconds`, looking at `cancelled()` every CANCEL_CHECK_S; True if it said so."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if cancelled():
            return True
        time.sleep(min(CANCEL_CHECK_S, left))
    return cancelled()


def _untrusted(error: ssl.SSLCertVerificationError) -> UploadError:
    return UploadError(TransferFailure.TRANSFER_FAILED,
                       f"the server's certificate is not trusted: {error.verify_message}", final=True)


# ---- HTTP(S) --------------------------------------------------------------------------------


def _http(path: Path, target: Target, timeout_s: float, context: ssl.SSLContext) -> None:
    size = path.stat().st_size
    with path.open("rb") as source:
        request = urllib.request.Request(target.http_url(path.name), data=source, method="PUT", headers={
            "Content-Type": "application/octet-stream", "Content-Length": str(size), **target.http_headers()})
        try:
            _send(request, timeout_s, context)
            return
        except urllib.error.HTTPError as error:
            if error.code not in PUT_REFUSED:
                raise _http_error(error) from None
            log.info("%s refused PUT (HTTP %s); posting a form", target.describe(), error.code)
        except (urllib.error.URLError, OSError) as error:
            raise _network_error(error) from None
    _post_form(path, target, timeout_s, context)


def _post_form(path: Path, target: Target, timeout_s: float, context: ssl.SSLContext) -> None:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{path.name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = len(head) + path.stat().st_size + len(tail)
    request = urllib.request.Request(target.http_url(None), data=_form_body(path, head, tail), method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                              "Content-Length": str(size), **target.http_headers()})
    try:
        _send(request, timeout_s, context)
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


def _send(request: urllib.request.Request, timeout_s: float, context: ssl.SSLContext) -> None:
    with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
        response.read()


def _http_error(error: urllib.error.HTTPError) -> UploadError:
    denied = error.code in PERMISSION_HTTP
    failure = TransferFailure.PERMISSION_DENIED if denied else TransferFailure.TRANSFER_FAILED
    return UploadError(failure, f"the server answered HTTP {error.code} {error.reason}")


def _network_error(error: BaseException) -> UploadError:
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, ssl.SSLCertVerificationError):
        return _untrusted(reason)
    return UploadError(TransferFailure.TRANSFER_FAILED, f"cannot reach the server: {reason}")


# ---- FTP / FTPS -----------------------------------------------------------------------------


def _ftp(path: Path, target: Target, timeout_s: float, context: ssl.SSLContext, *, resume: bool) -> None:
    client = (ftplib.FTP_TLS(context=context, timeout=timeout_s) if target.scheme == "ftps"
              else ftplib.FTP(timeout=timeout_s))
    try:
        client.connect(target.host, target.port or ftplib.FTP_PORT)
        client.login(target.username or "anonymous", target.password or "")
        if isinstance(client, ftplib.FTP_TLS):
            client.prot_p()
        if target.path:
            client.cwd(target.path)
        client.voidcmd("TYPE I")  # SIZE and REST count bytes only in binary mode
        offset = _resume_offset(client, path, target) if resume else 0
        with path.open("rb") as source:
            source.seek(offset)
            client.storbinary(f"STOR {path.name}", source, blocksize=CHUNK_BYTES, rest=offset or None)
    except ssl.SSLCertVerificationError as error:
        raise _untrusted(error) from None
    except ftplib.error_perm as error:
        denied = str(error)[:3] in PERMISSION_FTP
        failure = TransferFailure.PERMISSION_DENIED if denied else TransferFailure.TRANSFER_FAILED
        raise UploadError(failure, f"the FTP server refused: {error}") from None
    except (ftplib.Error, OSError, EOFError) as error:
        raise UploadError(TransferFailure.TRANSFER_FAILED, f"FTP transfer failed: {error}") from None
    finally:
        close_ftp(client)


def _resume_offset(client: ftplib.FTP, path: Path, target: Target) -> int:
    """Bytes of `path` the server already holds: its SIZE; 0 when it has none, does not answer
    SIZE, or holds more than the file (not ours to continue: sent again whole)."""
    try:
        held = client.size(path.name) or 0
    except ftplib.error_perm:  # 550 no such file, 500/502 SIZE not implemented
        return 0
    size = path.stat().st_size
    if held > size:
        log.warning("%s holds %d bytes of %s, more than its %d: sending it again whole",
                    target.describe(), held, path.name, size)
        return 0
    if held:
        log.info("resuming the upload of %s at byte %d of %d", path.name, held, size)
    return held


def close_ftp(client: ftplib.FTP) -> None:
    """QUIT politely; a connection already broken is just closed."""
    try:
        client.quit()
    except (ftplib.Error, OSError, EOFError, AttributeError):
        client.close()
