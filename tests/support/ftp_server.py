"""A real FTP server (pyftpdlib) on a free port in a thread, for uploads: one user with a
password and a writable home folder, anonymous login refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER, PASSWORD = "diag", "s3cret"


@dataclass
class FtpServer:
    root: Path
    port: int

    def url(self, folder: str = "", *, password: str = PASSWORD) -> str:
        return f"ftp://{USER}:{password}@127.0.0.1:{self.port}/{folder}"


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[FtpServer]:
    # Imported here, not at plugin load: pyftpdlib still builds on asyncore/asynchat, whose
    # deprecation warnings would otherwise show in every test session.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import ThreadedFTPServer

    root = tmp_path / "ftp"
    (root / "uploads").mkdir(parents=True)
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm="elwm")  # list, cd, write (STOR), mkdir

    class Handler(FTPHandler):
        pass

    Handler.authorizer = authorizer
    Handler.passive_ports = None
    server = ThreadedFTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.1}, daemon=True)
    thread.start()
    try:
        yield FtpServer(root, server.socket.getsockname()[1])
    finally:
        server.close_all()
        thread.join(timeout=5)
