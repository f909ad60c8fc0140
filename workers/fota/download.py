"""Downloading one file from the location an OCPP UpdateFirmware names, resumably.

Why resumable: a station's uplink is often a mobile modem, and an update of tens of MiB must
survive a dropped connection or a power cut without starting over. So the file grows in a
partial file the caller names (`packages/downloads/<id>.part`) and every call continues from
that file's size:
- HTTP(S): GET with `Range: bytes=<size>-` when the part is not empty. 206 appends (its
  Content-Range must start at <size>); 200 means the server ignores ranges, so the part is
  emptied and the body written from the start; 416 whose Content-Range `*/N` equals the size
  means the file is already complete, any other N means the file changed: start over.
  The validator of the answer that began the part (its strong ETag, else its Last-Modified) is
  kept beside it in `<part>.validator` and sent as `If-Range` with the Range: a file replaced
  on the server between a cut and the resume then comes back whole (200) instead of its tail
  being appended to the old version's head, a mix that would fail the signature check and
  raise a false security event. Without a validator (the server sends none) the Range goes
  alone, as before. The sidecar is deleted once the download is complete.
- FTP/FTPS: binary mode, SIZE, then RETR after REST <size>; a part longer than SIZE is a
  changed file: start over. FTPS is explicit TLS with a protected data channel, the server's
  certificate checked against the system trust store.
What arrived stays in the part file (flushed and fsynced every SYNC_EVERY_BYTES and when the
call ends), and `progress` only ever reports bytes that are on disk. A body shorter than the
server announced is a retryable error; a body longer than MAX_DOWNLOAD_BYTES is refused.

Location parsing, the retry wait and the rule that passwords never reach a log line or an
error text are upload.py's (`parse_location`, `Target.describe`, `wait_or_cancelled`).
"""

from __future__ import annotations

import email.message
import ftplib
import http.client
import logging
import os
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bus.messages import TransferFailure
from workers.jobs.upload import (
    CANCEL_CHECK_S,
    CHUNK_BYTES,
    PERMISSION_FTP,
    PERMISSION_HTTP,
    TIMEOUT_S,
    Target,
    TransferError,
    UploadError,
    close_ftp,
    parse_location,
    wait_or_cancelled,
)

log = logging.getLogger(__name__)

MAX_DOWNLOAD_BYTES = 2 * 1024**3  # no update file is this big: a server streaming forever is cut here
SYNC_EVERY_BYTES = 1024 * 1024  # flush + fsync the part file after this many new bytes
NOT_FOUND_HTTP = (404, 410)
NOT_FOUND_FTP = "550"
RANGE_NOT_SATISFIABLE = 416
CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


class DownloadError(TransferError):
    """A download that did not succeed. `retryable` only for a failed transfer that is not
    `final` (a file over the size cap, an untrusted certificate and a cancel are final)."""


class DownloadCancelled(DownloadError):
    """`cancelled()` said stop; what arrived so far stays in the part file."""

    def __init__(self) -> None:
        super().__init__(TransferFailure.TRANSFER_FAILED, "cancelled", final=True)


@dataclass(frozen=True)
class DownloadResult:
    size: int  # bytes in the part file now: the whole file
    resumed_from: int  # bytes the part file held that this call kept (0: it started from the start)
    fetched: int  # bytes this call received and kept


Progress = Callable[[int, int | None], None]  # (bytes on disk, whole size if known)


def download(location: str, part: Path, *, cancelled: Callable[[], bool] = lambda: False,
             progress: Progress = lambda _done, _total: None, timeout_s: float = TIMEOUT_S,
             ssl_context: ssl.SSLContext | None = None) -> DownloadResult:
    """Fetch the location into `part`, continuing from its size. Raises DownloadError."""
    target = _target(location)
    part.parent.mkdir(parents=True, exist_ok=True)
    with _PartFile(part, progress, cancelled) as sink:
        log.info("downloading %s into %s from byte %d", target.describe(), part.name, sink.size)
        if target.scheme in ("http", "https"):
            _http(target, sink, ssl_context, timeout_s)
        else:
            _ftp(target, sink, ssl_context, timeout_s)
        result = DownloadResult(sink.size, sink.kept_from, sink.size - sink.kept_from)
    validator_file(part).unlink(missing_ok=True)  # complete: nothing left to resume
    return result


def download_with_retries(location: str, part: Path, *, attempts: int, retry_interval_s: float,
                          cancelled: Callable[[], bool] = lambda: False,
                          on_failure: Callable[[int, DownloadError], None] | None = None,
                          progress: Progress = lambda _done, _total: None, timeout_s: float = TIMEOUT_S,
                          ssl_context: ssl.SSLContext | None = None) -> DownloadResult:
    """Try up to `attempts` times, each continuing the part file, waiting `retry_interval_s`
    between tries; a failure another try cannot fix ends it at once. `cancelled()` is checked
    while waiting and while bytes arrive (DownloadCancelled)."""
    for attempt in range(1, attempts + 1):
        try:
            return download(location, part, cancelled=cancelled, progress=progress, timeout_s=timeout_s,
                            ssl_context=ssl_context)
        except DownloadCancelled:
            raise
        except DownloadError as error:
            if on_failure is not None:
                on_failure(attempt, error)
            if not error.retryable or attempt == attempts:
                raise
        if wait_or_cancelled(retry_interval_s, cancelled):
            raise DownloadCancelled
    raise AssertionError("unreachable: attempts >= 1")


def _target(location: str) -> Target:
    try:
        return parse_location(location)
    except UploadError as error:
        raise DownloadError(error.failure, str(error)) from None


class _PartFile:
    """The partial file being appended to: syncs to disk every SYNC_EVERY_BYTES, reports progress
    for synced bytes only, enforces the size cap and notices a cancel."""

    def __init__(self, path: Path, progress: Progress, cancelled: Callable[[], bool]) -> None:
        self.path = path
        self._file = path.open("ab")
        self.size = self._file.tell()
        self.kept_from = self.size
        self.total: int | None = None  # the whole file's size, once the server said it
        self._unsynced = 0
        self._progress = progress
        self._cancelled = cancelled
        self._next_cancel_check = 0.0

    def __enter__(self) -> _PartFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            self.sync()
        finally:
            self._file.close()

    def announce(self, total: int | None) -> None:
        """The server told the whole size: refuse a file over the cap before reading it."""
        if total is not None and total > MAX_DOWNLOAD_BYTES:
            raise DownloadError(TransferFailure.TRANSFER_FAILED,
                                f"the file has {total} bytes, more than the {MAX_DOWNLOAD_BYTES} allowed",
                                final=True)
        self.total = total

    def restart(self) -> None:
        """Empty the part file, on disk at once: what it held belongs to another version of the
        file (and the validator written next must never sit beside those bytes)."""
        self._file.truncate(0)
        self._file.seek(0)
        os.fsync(self._file.fileno())
        self.size = self.kept_from = self._unsynced = 0

    def write(self, chunk: bytes) -> None:
        if self.size + len(chunk) > MAX_DOWNLOAD_BYTES:
            raise DownloadError(TransferFailure.TRANSFER_FAILED,
                                f"the server sent more than {MAX_DOWNLOAD_BYTES} bytes", final=True)
        self._file.write(chunk)
        self.size += len(chunk)
        self._unsynced += len(chunk)
        if self._unsynced >= SYNC_EVERY_BYTES:
            self.sync()
        if time.monotonic() >= self._next_cancel_check:
            self._next_cancel_check = time.monotonic() + CANCEL_CHECK_S
            if self._cancelled():
                raise DownloadCancelled

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._unsynced = 0
        self._progress(self.size, self.total)

    def check_complete(self, received: int, expected: int | None) -> None:
        """A body shorter (or longer) than announced: the connection ended early, try again."""
        if expected is not None and received != expected:
            raise DownloadError(TransferFailure.TRANSFER_FAILED,
                                f"the transfer ended after {received} of {expected} bytes")


# ---- HTTP(S) --------------------------------------------------------------------------------


def _http(target: Target, sink: _PartFile, ssl_context: ssl.SSLContext | None, timeout_s: float) -> None:
    if not _http_get(target, sink, ssl_context, timeout_s):
        log.info("%s is shorter than the %d bytes already here (it changed): starting over",
                 target.describe(), sink.size)
        sink.restart()
        _http_get(target, sink, ssl_context, timeout_s)


def _http_get(target: Target, sink: _PartFile, ssl_context: ssl.SSLContext | None,
              timeout_s: float) -> bool:
    """One GET continuing the part; False if the server's file is not the one the part began."""
    offset = sink.size
    ranged = {"Range": f"bytes={offset}-"} if offset else {}
    validator = _kept_validator(sink.path) if offset else None
    if validator is not None:
        ranged["If-Range"] = validator
    request = urllib.request.Request(target.http_url(None), headers={**target.http_headers(), **ranged})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=ssl_context) as response:
            _http_body(target, response, sink, offset)
            return True
    except urllib.error.HTTPError as error:
        if error.code != RANGE_NOT_SATISFIABLE or not offset:
            raise _http_error(error) from None
        complete = UNSATISFIED_RANGE.fullmatch(error.headers.get("Content-Range", "").strip())
        if complete is None or int(complete[1]) != offset:
            return False
        sink.announce(offset)
        return True
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise _untrusted(reason) from None
        raise DownloadError(TransferFailure.TRANSFER_FAILED, f"cannot reach the server: {reason}") from None


def _http_body(target: Target, response: http.client.HTTPResponse, sink: _PartFile, offset: int) -> None:
    length = _content_length(response.headers)
    if response.status == 206:
        start, end, total = _content_range(response.headers, offset)
        if length is not None and length != end + 1 - start:
            raise DownloadError(TransferFailure.TRANSFER_FAILED,
                                f"Content-Length {length} does not match Content-Range {start}-{end}")
        sink.announce(total)
        expected: int | None = end + 1 - start
    elif response.status == 200:
        if offset:
            log.info("%s sent the whole file (HTTP 200: it changed, or the server ignores Range): "
                     "starting over", target.describe())
        _begin_part(sink, _validator_of(response.headers))
        sink.announce(length)
        expected = length
    else:
        raise DownloadError(TransferFailure.TRANSFER_FAILED, f"unexpected HTTP {response.status}")
    while chunk := response.read(CHUNK_BYTES):
        sink.write(chunk)
    sink.check_complete(sink.size - sink.kept_from, expected)
    sink.check_complete(sink.size, sink.total)


def validator_file(part: Path) -> Path:
    """Where the validator of the answer that began `part` is kept."""
    return part.with_name(part.name + ".validator")


def _validator_of(headers: email.message.Message) -> str | None:
    """The answer's strong ETag, else its Last-Modified; None if it has neither. A weak ETag
    (W/"...") may not be sent in If-Range (RFC 9110 13.1.5)."""
    etag = (headers.get("ETag") or "").strip()
    if etag and not etag.startswith("W/"):
        return etag
    return (headers.get("Last-Modified") or "").strip() or None


def _kept_validator(part: Path) -> str | None:
    """The kept validator, or None if there is none or it is not a usable header value (a
    damaged file is ignored: the resume then works as without a validator)."""
    try:
        value = validator_file(part).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not value or not value.isprintable():
        return None
    return value


def _begin_part(sink: _PartFile, validator: str | None) -> None:
    """The part starts again from byte 0 with a new answer. The old validator goes first and
    the emptied part is on disk before the new validator is written, so a power cut in between
    never leaves the new validator beside old bytes."""
    sidecar = validator_file(sink.path)
    sidecar.unlink(missing_ok=True)
    sink.restart()
    if validator is None:
        return
    staged = sidecar.with_name(sidecar.name + ".new")
    with staged.open("w", encoding="ascii", errors="replace") as file:
        file.write(validator)
        file.flush()
        os.fsync(file.fileno())
    os.replace(staged, sidecar)


def _content_length(headers: email.message.Message) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise DownloadError(TransferFailure.TRANSFER_FAILED, f"unusable Content-Length {value!r}")
    return int(value)


def _content_range(headers: email.message.Message, offset: int) -> tuple[int, int, int | None]:
    """(first byte, last byte, whole size or None) of a 206, which must continue at `offset`."""
    value = headers.get("Content-Range", "")
    found = CONTENT_RANGE.fullmatch(value.strip())
    if found is None or int(found[2]) < int(found[1]):
        raise DownloadError(TransferFailure.TRANSFER_FAILED, f"unusable Content-Range {value!r}")
    if int(found[1]) != offset:
        raise DownloadError(TransferFailure.TRANSFER_FAILED,
                            f"asked for bytes from {offset}, the server sent from {found[1]}")
    return int(found[1]), int(found[2]), None if found[3] == "*" else int(found[3])


def _untrusted(error: ssl.SSLCertVerificationError) -> DownloadError:
    return DownloadError(TransferFailure.TRANSFER_FAILED,
                         f"the server's certificate is not trusted: {error.verify_message}", final=True)


def _http_error(error: urllib.error.HTTPError) -> DownloadError:
    text = f"the server answered HTTP {error.code} {error.reason}"
    if error.code in PERMISSION_HTTP:
        return DownloadError(TransferFailure.PERMISSION_DENIED, text)
    if error.code in NOT_FOUND_HTTP:
        return DownloadError(TransferFailure.BAD_REQUEST, text)
    return DownloadError(TransferFailure.TRANSFER_FAILED, text)


# ---- FTP / FTPS -----------------------------------------------------------------------------


def _ftp(target: Target, sink: _PartFile, ssl_context: ssl.SSLContext | None, timeout_s: float) -> None:
    if target.scheme == "ftps":
        client: ftplib.FTP = ftplib.FTP_TLS(context=ssl_context or ssl.create_default_context(),
                                            timeout=timeout_s)
    else:
        client = ftplib.FTP(timeout=timeout_s)
    try:
        client.connect(target.host, target.port or ftplib.FTP_PORT)
        client.login(target.username or "anonymous", target.password or "")
        if isinstance(client, ftplib.FTP_TLS):
            client.prot_p()
        client.voidcmd("TYPE I")
        _retrieve(target, client, sink)
    except ssl.SSLCertVerificationError as error:
        raise _untrusted(error) from None
    except ftplib.error_perm as error:
        raise DownloadError(_ftp_refusal(str(error)[:3]), f"the FTP server refused: {error}") from None
    except (ftplib.Error, OSError, EOFError) as error:
        raise DownloadError(TransferFailure.TRANSFER_FAILED, f"FTP transfer failed: {error}") from None
    finally:
        close_ftp(client)


def _retrieve(target: Target, client: ftplib.FTP, sink: _PartFile) -> None:
    total = client.size(target.path)
    if total is not None and sink.size > total:
        log.info("%s is shorter than the %d bytes already here (it changed): starting over",
                 target.describe(), sink.size)
        sink.restart()
    sink.announce(total)
    if total is not None and sink.size == total:
        return
    with client.transfercmd(f"RETR {target.path}", rest=sink.size or None) as data:
        while chunk := data.recv(CHUNK_BYTES):
            sink.write(chunk)
        if isinstance(data, ssl.SSLSocket):
            data.unwrap()
    client.voidresp()
    sink.check_complete(sink.size, total)


def _ftp_refusal(code: str) -> TransferFailure:
    if code in PERMISSION_FTP:
        return TransferFailure.PERMISSION_DENIED
    if code == NOT_FOUND_FTP:  # no such file (or it may not be read)
        return TransferFailure.BAD_REQUEST
    return TransferFailure.TRANSFER_FAILED
