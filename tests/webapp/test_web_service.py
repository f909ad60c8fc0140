"""`python -m webapp` as a real process: pages and static files under uvicorn without DEBUG,
its heartbeat, a clean stop on SIGTERM, and a clear error when its port is taken."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request

from websockets.asyncio.client import connect

from bus import Bus, contract
from tests.support.waiting import async_wait_until
from tests.webapp.conftest import WebProcess
from webapp.env import REPO_ROOT


def fetch(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_serves_the_hmi_page_its_files_and_the_admin_styles(web_service: WebProcess) -> None:
    status, _, page = fetch(f"{web_service.url}/hmi/")
    assert status == 200
    assert b"/static/hmi/hmi.js" in page and b"/static/hmi/hmi.css" in page

    for path, kind in (("/static/hmi/hmi.js", "javascript"), ("/static/hmi/i18n.js", "javascript"),
                       ("/static/hmi/hmi.css", "text/css"), ("/static/admin/css/base.css", "text/css")):
        status, content_type, body = fetch(f"{web_service.url}{path}")
        assert (status, kind in content_type, len(body) > 0) == (200, True, True), path

    status, _, login = fetch(f"{web_service.url}/admin/login/")
    assert status == 200 and b'name="password"' in login


async def test_writes_its_heartbeat(web_service: WebProcess, bus: Bus) -> None:
    assert web_service.process is not None

    beat = await async_wait_until(lambda: bus.get(contract.HEARTBEAT, service="web"), timeout_s=10,
                                  what="the web heartbeat")

    assert beat.pid == web_service.process.pid


async def test_sigterm_closes_the_hmi_sockets_and_exits_0(web_service: WebProcess) -> None:
    async with connect(f"ws://127.0.0.1:{web_service.port}/ws/hmi/", origin=web_service.url) as websocket:
        kiosk, snapshot = json.loads(await websocket.recv()), json.loads(await websocket.recv())
        assert (kiosk["type"], snapshot["type"]) == ("kiosk", "snapshot")

        assert web_service.stop() == 0

        await websocket.wait_closed()
    assert websocket.close_code == 1012  # "service restart": closed by the server, not dropped
    assert "web stopped" in web_service.log()


def test_a_taken_port_stops_start_up_with_a_clear_message(redis_client) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "WEB_PORT": str(port), "WEB_HOST": "127.0.0.1"}
        result = subprocess.run([sys.executable, "-m", "webapp"], cwd=REPO_ROOT, env=env,
                                capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
