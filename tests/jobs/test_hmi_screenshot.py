"""The HMI_SCREENSHOT job against the real web service (a live `python -m webapp` serving
/hmi/ with its websocket on the test Redis), run by a real RQ worker or synchronously, in the
system's headless Chromium: a PNG of exactly the asked size; and every way it can fail."""

from __future__ import annotations

import dataclasses
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.webapp.conftest import WebProcess
from webapp.env import StationEnv
from webapp.station.models import JobRecord
from workers.common.redis_server import free_port
from workers.jobs import hmi_screenshot
from workers.jobs.base import JobKind
from workers.jobs.runner import run_sync, submit

pytestmark = [pytest.mark.django_db, pytest.mark.browser]

STALE_PAGE = b'<!DOCTYPE html><html><body class="stale"><h1>no live data</h1></body></html>'


def web_on(settings, station_env: StationEnv, port: int) -> StationEnv:
    """Point the job at a web service on `port` (as WEB_PORT would)."""
    env = dataclasses.replace(station_env, web_port=port)
    settings.STATION_ENV = env
    return env


@pytest.fixture(autouse=True)
def _listen_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEB_HOST", raising=False)


@pytest.fixture
def web(redis_client, settings, station_env: StationEnv, tmp_path: Path) -> Iterator[StationEnv]:
    """The real web service; the job's settings point at it."""
    process = WebProcess(free_port(), tmp_path / "web.log")
    process.start()
    try:
        yield web_on(settings, station_env, process.port)
    finally:
        process.stop()


@pytest.fixture
def static_page(settings, station_env: StationEnv) -> Iterator[StationEnv]:
    """A plain HTTP server: /hmi/ is a page that never gets live data, anything else 404."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/hmi/"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(STALE_PAGE if found else b"not here")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield web_on(settings, station_env, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def png_size(env: StationEnv, record: JobRecord) -> tuple[int, int]:
    with Image.open(env.data_dir / record.result_file) as image:
        assert image.format == "PNG"
        return image.size


def test_the_worker_renders_the_live_page_at_the_asked_size_and_keeps_the_newest_files(
        web: StationEnv, queue, run_worker, django_capture_on_commit_callbacks) -> None:
    folder = hmi_screenshot.screenshots_dir(web)
    folder.mkdir(parents=True)
    old = [folder / f"hmi-old{number}.png" for number in range(hmi_screenshot.KEEP_SCREENSHOTS)]
    for number, path in enumerate(old):  # the oldest first
        path.write_bytes(b"old")
        os.utime(path, (1_000_000 + number, 1_000_000 + number))
    with django_capture_on_commit_callbacks(execute=True):
        record = submit(JobKind.HMI_SCREENSHOT, {"width": 1024, "height": 600},
                        timeout_s=hmi_screenshot.TIME_LIMIT_S)

    assert run_worker()

    record.refresh_from_db()
    assert record.status == JobRecord.Status.FINISHED, record.log
    assert record.result_file == f"screenshots/hmi-{record.pk}.png"
    assert png_size(web, record) == (1024, 600)
    with Image.open(web.data_dir / record.result_file) as image:
        assert len(image.convert("RGB").getcolors(maxcolors=1_000_000) or []) > 10  # not a blank page
    assert f"rendering http://127.0.0.1:{web.web_port}/hmi/ at 1024x600" in record.log
    assert "no live data" not in record.log  # the websocket's snapshot arrived first
    kept = sorted(path.name for path in folder.iterdir())
    assert kept == sorted([f"hmi-{record.pk}.png", *(path.name for path in old[1:])])


def test_a_page_without_live_data_is_still_captured_and_the_log_says_so(
        static_page: StationEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hmi_screenshot, "LIVE_DATA_WAIT_MS", 300)

    record = run_sync(JobKind.HMI_SCREENSHOT, {})

    assert record.status == JobRecord.Status.FINISHED, record.log
    assert png_size(static_page, record) == (1280, 800)  # the default: the reference touch screen
    assert "WARNING the page had no live data after 0 s" in record.log


def test_an_error_page_fails_the_job(static_page: StationEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hmi_screenshot, "hmi_url", lambda: f"http://127.0.0.1:{static_page.web_port}/nope/")

    record = run_sync(JobKind.HMI_SCREENSHOT, {})

    assert record.status == JobRecord.Status.FAILED
    url = f"http://127.0.0.1:{static_page.web_port}/nope/"
    assert f"failed: {url} answered HTTP 404, not the kiosk page" in record.log
    assert record.result_file == ""


def test_a_web_service_that_does_not_answer_fails_the_job(settings, station_env: StationEnv) -> None:
    port = free_port()
    web_on(settings, station_env, port)

    record = run_sync(JobKind.HMI_SCREENSHOT, {})

    assert record.status == JobRecord.Status.FAILED
    assert f"failed: the web service does not answer at http://127.0.0.1:{port}/hmi/" in record.log
    assert "ERR_CONNECTION_REFUSED" in record.log
    assert not hmi_screenshot.screenshots_dir(station_env).exists()


@pytest.mark.parametrize(("params", "reason"), [
    ({"width": 100, "height": 800}, "width: Input should be greater than or equal to 320"),
    ({"width": 1280, "height": 99999}, "height: Input should be less than or equal to 2160"),
    ({"width": "wide"}, "width: Input should be a valid integer"),
    ({"zoom": 2}, "zoom: Extra inputs are not permitted"),
])
def test_bad_parameters_fail_before_anything_starts(station_env: StationEnv, params: dict[str, object],
                                                   reason: str) -> None:
    record = run_sync(JobKind.HMI_SCREENSHOT, params)
    assert record.status == JobRecord.Status.FAILED
    assert f"failed: invalid screenshot request: {reason}" in record.log


def test_a_missing_chromium_fails_with_the_reason(station_env: StationEnv,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMIUM_PATH", "/nonexistent/chromium")
    record = run_sync(JobKind.HMI_SCREENSHOT, {})
    assert record.status == JobRecord.Status.FAILED
    assert "failed: CHROMIUM_PATH=/nonexistent/chromium is not a file" in record.log


@pytest.mark.parametrize(("host", "url"), [
    ("0.0.0.0", "http://127.0.0.1:8123/hmi/"),
    ("192.168.7.2", "http://192.168.7.2:8123/hmi/"),
    ("::", "http://127.0.0.1:8123/hmi/"),
    ("fe80::1", "http://[fe80::1]:8123/hmi/"),
])
def test_the_url_is_where_web_listens(settings, station_env: StationEnv, monkeypatch: pytest.MonkeyPatch,
                                      host: str, url: str) -> None:
    web_on(settings, station_env, 8123)
    monkeypatch.setenv("WEB_HOST", host)
    assert hmi_screenshot.hmi_url() == url
