"""A real FTP server (pyftpdlib) on a free port in a thread, for uploads and downloads: one user
with a password and a writable home folder, anonymous login refused. It records every command
(REST offsets are what the download tests look for) and can end the next RETR early as if the
file were shorter (`cut_after`); plain FTP receives uploads at `read_limit` bytes per second,
so a test can stop the uploader in the middle of one. `ftps_server` is the same over explicit
TLS, with a self-signed certificate the test trusts through `ssl_context`."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

USER, PASSWORD = "diag", "s3cret"


@dataclass
class FtpServer:
    root: Path
    port: int
    scheme: str = "ftp"
    commands: list[str] = field(default_factory=list)  # as received; PASS without its argument
    cut_after: int | None = None  # the next RETR sends this many bytes, then ends as if done
    ssl_context: ssl.SSLContext | None = None  # ftps: a client context trusting the server
    read_limit: int = 0  # ftp: bytes per second an upload is received at, 0 = no limit; applies at once
    stored: list[str] = field(default_factory=list)  # files whose upload ended (complete or cut off)

    def url(self, folder: str = "", *, password: str = PASSWORD) -> str:
        return f"{self.scheme}://{USER}:{password}@127.0.0.1:{self.port}/{folder}"


class _CutFile:
    """A file that seems to end after `limit` bytes from where it was read first."""

    def __init__(self, file: IO[bytes], limit: int) -> None:
        self._file, self._left = file, limit

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(self._left if size < 0 else min(size, self._left))
        self._left -= len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[FtpServer]:
    with _running(FtpServer(tmp_path / "ftp", 0)) as server:
        yield server


@pytest.fixture
def ftps_server(tmp_path: Path) -> Iterator[FtpServer]:
    certificate = _self_signed(tmp_path / "ftps-cert.pem")
    context = ssl.create_default_context(cafile=str(certificate))
    with _running(FtpServer(tmp_path / "ftp", 0, "ftps", ssl_context=context), certificate) as server:
        yield server


@contextmanager
def _running(state: FtpServer, certificate: Path | None = None) -> Iterator[FtpServer]:
    # Imported here, not at plugin load: pyftpdlib still builds on asyncore/asynchat, whose
    # deprecation warnings would otherwise show in every test session.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.filesystems import AbstractedFS
        from pyftpdlib.handlers import FTPHandler, ThrottledDTPHandler, TLS_FTPHandler
        from pyftpdlib.servers import ThreadedFTPServer

    (state.root / "uploads").mkdir(parents=True)
    authorizer = DummyAuthorizer()
    # list, cd, write (STOR), mkdir, read (RETR)
    authorizer.add_user(USER, PASSWORD, str(state.root), perm="elwmr")

    class Filesystem(AbstractedFS):
        def open(self, filename: str, mode: str) -> Any:
            file = super().open(filename, mode)
            if mode != "rb" or state.cut_after is None:
                return file
            limit, state.cut_after = state.cut_after, None
            return _CutFile(file, limit)

    class Handler(TLS_FTPHandler if certificate else FTPHandler):
        def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
            state.commands.append(cmd if cmd == "PASS" else line)
            super().pre_process_command(line, cmd, arg)

        def on_file_received(self, file: str) -> None:
            state.stored.append(Path(file).name)

        on_incomplete_file_received = on_file_received

    class ThrottledData(ThrottledDTPHandler):
        @property  # read where it is used: a change applies to the transfer in progress
        def read_limit(self) -> int:  # type: ignore[override]
            return state.read_limit

    Handler.authorizer = authorizer
    Handler.passive_ports = None
    Handler.abstracted_fs = Filesystem
    Handler.use_sendfile = False  # RETR reads through Filesystem.open (and its cut)
    Handler.auth_failed_timeout = 0.1  # a refused login answers at once (the default waits 3 s)
    if certificate is None:
        Handler.dtp_handler = ThrottledData
    else:
        Handler.certfile = str(certificate)
        Handler.tls_control_required = Handler.tls_data_required = True
    server = ThreadedFTPServer(("127.0.0.1", 0), Handler)
    state.port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.1}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.close_all()
        thread.join(timeout=5)


def _self_signed(path: Path) -> Path:
    """A certificate (with its key, PEM) for 127.0.0.1, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path
