"""`manage.py csms` runs the development CSMS in the foreground (ops/run-sim.sh starts it)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from websockets.asyncio.client import connect

from tests.support.waiting import wait_until
from webapp.env import REPO_ROOT
from workers.common.redis_server import free_port, is_listening


async def test_csms_command_answers_a_charge_point_and_logs_what_it_receives(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "csms.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([sys.executable, "manage.py", "csms", "--port", str(port),
                                    "--reject-id-tag", "BAD1"], cwd=REPO_ROOT, env=dict(os.environ),
                                   stdout=log_file, stderr=subprocess.STDOUT)
    try:
        await asyncio.to_thread(wait_until, lambda: is_listening("127.0.0.1", port), timeout_s=30,
                                what="the CSMS listening")
        async with connect(f"ws://127.0.0.1:{port}/ocpp/CP%201", subprotocols=["ocpp1.6"]) as ws:
            assert ws.subprotocol == "ocpp1.6"
            await ws.send(json.dumps([2, "b1", "BootNotification",
                                      {"chargePointVendor": "V", "chargePointModel": "M"}]))
            boot = json.loads(await ws.recv())
            await ws.send(json.dumps([2, "a1", "Authorize", {"idTag": "BAD1"}]))
            authorize = json.loads(await ws.recv())
        assert boot[:2] == [3, "b1"] and boot[2]["status"] == "Accepted"
        assert authorize == [3, "a1", {"idTagInfo": {"status": "Invalid"}}]
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 15)
    log = log_path.read_text()
    assert code == 0, log
    assert "CP 1 -> BootNotification" in log and "CP 1 -> Authorize" in log
