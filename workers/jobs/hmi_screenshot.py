"""The HMI_SCREENSHOT job: what the kiosk screen shows now, as a PNG for the configurator.

Why a job: rendering needs a headless Chromium (a couple of seconds, ~150 MB), which has no
place inside the web process; the jobs worker runs it and the configurator shows the file
(webapp/station/admin_jobs.py). It renders the page the kiosk shows, /hmi/ of this station's web
service (WEB_HOST and WEB_PORT, as web listens; a wildcard address is reached on 127.0.0.1), at
the screen's resolution (default 1280x800, the reference touch screen), waits until the page has
its live data (the websocket's first snapshot clears the page's "stale" mark) and writes
STATION_DATA_DIR/screenshots/hmi-<job id>.png, keeping the newest KEEP_SCREENSHOTS files.

A page that gets no live data within LIVE_DATA_WAIT_MS is still captured, since that is what a
driver sees (the "connection lost" banner), and the job's log says so. A web service that does
not answer, an error page or a missing Chromium fail the job with the reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from webapp.env import ALL_INTERFACES, StationEnv
from webapp.server import listen_address
from workers.jobs.archive import describe
from workers.jobs.base import JobFailed, JobLog

SCREENSHOTS_FOLDER = "screenshots"  # under STATION_DATA_DIR
FILE_PREFIX = "hmi-"
KEEP_SCREENSHOTS = 5
PAGE_LOAD_TIMEOUT_MS = 15_000
LIVE_DATA_WAIT_MS = 10_000
TIME_LIMIT_S = 90  # the RQ job's limit: Chromium start, page load, live data, capture
CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_ARGS = (  # a kiosk-like, quiet headless Chromium; --no-sandbox lets it run as root
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class ScreenshotRequest(BaseModel):
    """The job's parameters: the screen size in CSS pixels (the PNG has exactly this size)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(default=1280, ge=320, le=3840)
    height: int = Field(default=800, ge=240, le=2160)

    def to_params(self) -> dict[str, Any]:
        return self.model_dump()


def screenshots_dir(env: StationEnv) -> Path:
    return env.data_dir / SCREENSHOTS_FOLDER


def hmi_url() -> str:
    """The kiosk page of this station's web service, as web listens."""
    host, port = listen_address()
    if host in ALL_INTERFACES:
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/hmi/"


def chromium_executable() -> str:
    """CHROMIUM_PATH, else the system's chromium; JobFailed when there is none."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        if not Path(configured).is_file():
            raise JobFailed(f"CHROMIUM_PATH={configured} is not a file")
        return configured
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise JobFailed(f"no Chromium on this station (none of {', '.join(CHROMIUM_NAMES)} on PATH; "
                    "set CHROMIUM_PATH)")


def take_screenshot(job: JobLog, params: dict[str, Any]) -> str:
    """The job's handler: returns the PNG's path relative to STATION_DATA_DIR."""
    try:
        request = ScreenshotRequest.model_validate(params)
    except ValidationError as error:
        raise JobFailed(f"invalid screenshot request: {describe(error)}") from error
    env: StationEnv = settings.STATION_ENV
    url = hmi_url()
    executable = chromium_executable()
    job.info("rendering %s at %dx%d with %s", url, request.width, request.height, executable)
    png, live = _render(url, request, executable)
    if not live:
        job.warning("the page had no live data after %d s (web socket or bus down): captured as a "
                    "driver sees it, 'connection lost' banner and all", LIVE_DATA_WAIT_MS // 1000)
    folder = screenshots_dir(env)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{FILE_PREFIX}{job.record_id}.png"
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(png)
    partial.replace(target)
    job.info("screenshot saved: %s (%d bytes)", target.name, len(png))
    _keep_newest(folder, KEEP_SCREENSHOTS)
    return str(target.relative_to(env.data_dir))


def _render(url: str, request: ScreenshotRequest, executable: str) -> tuple[bytes, bool]:
    """The PNG, and whether the page had its live data. No database here: Playwright's sync
    API runs an event loop in this thread, where Django refuses ORM calls."""
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                                 args=list(CHROMIUM_ARGS))
        except PlaywrightError as error:
            raise JobFailed(f"Chromium ({executable}) does not start: {_first_line(error)}") from error
        try:
            page = browser.new_page(viewport={"width": request.width, "height": request.height},
                                    device_scale_factor=1)
            try:
                response = page.goto(url, wait_until="load", timeout=PAGE_LOAD_TIMEOUT_MS)
            except PlaywrightError as error:
                raise JobFailed(f"the web service does not answer at {url}: {_first_line(error)}") from error
            if response is None or not response.ok:
                status = "nothing" if response is None else f"HTTP {response.status}"
                raise JobFailed(f"{url} answered {status}, not the kiosk page")
            try:
                page.wait_for_selector("body:not(.stale)", state="attached", timeout=LIVE_DATA_WAIT_MS)
                live = True
            except PlaywrightTimeoutError:
                live = False
            return page.screenshot(type="png"), live
        finally:
            browser.close()


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _keep_newest(folder: Path, count: int) -> None:
    """Delete all but the `count` newest screenshots (the disk of a station is small)."""
    shots = sorted(folder.glob(f"{FILE_PREFIX}*.png"), key=lambda shot: shot.stat().st_mtime, reverse=True)
    for old in shots[count:]:
        old.unlink(missing_ok=True)
