"""`python -m workers.diag`: publishes the self-test report every few seconds (contract.DIAG),
runs it on request (contract.SELF_TEST), logs each change of a check's result once, and trims
the log folder every minute.

Provides: key contract.DIAG (TTL, so a dead diag leaves no stale report); command
contract.SELF_TEST (the checks judged at that moment from fresh reads, never the cached report;
of every subject, or of one: an unknown subject is answered with no checks and ok=False).
Reads: contract.METER per configured meter, contract.STATION, contract.DEVICE per configured
device, contract.SUPERVISOR, contract.HEARTBEAT per supervised service and device owner.
Settings: DIAG_LOG_FILES_PER_TYPE (files kept per log type, default 10).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import ClassVar

from bus import Service, contract
from bus.enums import CheckState
from bus.messages import DiagReport, SelfTestRequest, utcnow
from bus.tasks import run_all
from workers.diag.checks import ChangeLog, about, build_report, read, supervised_services
from workers.diag.config import DiagConfig
from workers.diag.rotation import rotate_logs

log = logging.getLogger(__name__)


class DiagService(Service):
    name: ClassVar[str] = "diag"
    report_period_s: ClassVar[float] = 2.0
    rotation_period_s: ClassVar[float] = 60.0
    startup_grace_s: ClassVar[float] = 15.0
    """Results are published at once, changes are logged only after this (see ChangeLog)."""

    def __init__(self, config: DiagConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiagConfig.load()
        self.changes = ChangeLog(quiet_until=time.monotonic() + self.startup_grace_s)
        self.services: tuple[str, ...] = ()

    async def run(self) -> None:
        await run_all(self._report_periodically(),
                      self.bus.serve(contract.SELF_TEST, self.self_test, stop=self.stopping))

    async def _report_periodically(self) -> None:
        next_rotation = time.monotonic()
        while not self.stopping.is_set():
            report = await self.report_once()
            self.changes.update(report, time.monotonic())
            if time.monotonic() >= next_rotation:
                await asyncio.to_thread(rotate_logs, self.config.logs_dir, self.config.log_files_per_type)
                next_rotation = time.monotonic() + self.rotation_period_s
            if not await self.sleep(self.report_period_s):
                return

    async def judge_now(self) -> DiagReport:
        """Read every key now and judge every configured device and supervised service."""
        supervisor = await read(self.bus, contract.SUPERVISOR)
        self.services = supervised_services(supervisor, self.services)
        return await build_report(self.bus, self.config.meters, self.services, supervisor, utcnow(),
                                  devices=self.config.devices)

    async def report_once(self) -> DiagReport:
        """Judge every device and service now and publish the report."""
        report = await self.judge_now()
        await self.bus.set(contract.DIAG, report)
        return report

    async def self_test(self, request: SelfTestRequest) -> DiagReport:
        """contract.SELF_TEST: the checks of `request.subject` (all for None), judged now."""
        report = about(await self.judge_now(), request.subject)
        failing = [check.name for check in report.checks if check.state is not CheckState.OK]
        log.info("self-test of %s requested: %s", request.subject or "the station",
                 "passed" if report.ok else f"failed ({', '.join(failing) or 'no such subject'})")
        return report
