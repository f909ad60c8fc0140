"""The configurator's pages in headless Chromium, against the real web service (ASGI, its own
migrated database) and the real bus; chargepoint and smartw are the fakes of
test_configurator_pages, answering on the bus."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from bus import Bus, contract
from bus.enums import ConnectorStatus, Standard
from bus.messages import ChangeAvailabilityRequest, ConnectorState, ShutdownRequest, utcnow
from tests.support.database import query, sqlite_url
from tests.support.waiting import async_wait_until
from tests.webapp.conftest import WebProcess
from tests.webapp.test_configurator_pages import BusThread, FakeStation
from webapp.env import REPO_ROOT
from workers.common.redis_server import free_port

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "olga", "a-long-test-password"
WAIT_MS = 10_000  # the dashboard polls every 2 s


@pytest.fixture(scope="module")
def configurator(redis_server: str, migrated_template: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebProcess]:
    """The web service on a migrated database of its own with one superuser, shared by the
    module's tests (each opens its own browser profile and logs in)."""
    folder = tmp_path_factory.mktemp("configurator")
    database = folder / "station.sqlite3"
    with sqlite3.connect(migrated_template) as source, sqlite3.connect(database) as target:
        source.backup(target)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", sqlite_url(database))
        subprocess.run([sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", USERNAME,
                        "--email", "olga@example.org"], cwd=REPO_ROOT, check=True, capture_output=True,
                       timeout=60, env={**os.environ, "DJANGO_SUPERUSER_PASSWORD": PASSWORD})
        web = WebProcess(free_port(), folder / "web.log")
        web.start()
    try:
        yield web
    finally:
        web.stop()


@pytest.fixture
def web(configurator: WebProcess, redis_client) -> WebProcess:
    """The shared web service, with a flushed Redis for this test."""
    return configurator


def stored_settings(web: WebProcess) -> dict[str, str]:
    rows = query(web.log_path.parent / "station.sqlite3", "SELECT name, value FROM station_stationsetting")
    return {row["name"]: row["value"] for row in rows}


@pytest.fixture
def fake_station(redis_client) -> Iterator[FakeStation]:
    station = FakeStation()
    with BusThread(station.handlers()):
        yield station


async def open_logged_in(page: Page, web: WebProcess, path: str) -> None:
    """Open `path`: the admin's login comes first, then the page itself."""
    await page.goto(f"{web.url}{path}")
    await expect(page.locator("#login-form")).to_be_visible()
    await page.fill("#id_username", USERNAME)
    await page.fill("#id_password", PASSWORD)
    await page.click("#login-form [type=submit]")
    await expect(page).to_have_url(f"{web.url}{path}")


async def test_a_setting_changed_in_the_form_is_saved_and_published(
        web: WebProcess, bus: Bus, browser_page: Page) -> None:
    page = browser_page
    await open_logged_in(page, web, "/configurator/settings/")

    await page.select_option("#id_hmi_language", "ru")
    await page.fill("#id_station_power_limit_kw", "42")
    await page.click("#settings-save")

    await expect(page.locator(".messagelist")).to_contain_text("HMI language: Saved")
    await expect(page.locator("#id_hmi_language")).to_have_value("ru")
    assert stored_settings(web) == {"hmi_language": '"ru"', "station_power_limit_kw": "42.0"}
    assert (await bus.get(contract.HMI_SETTINGS)).language == "ru"
    assert (await bus.get(contract.OPERATOR_LIMIT, connector_id=0)).limit_w == 42_000


async def test_availability_buttons_reach_smartw_and_show_its_answer(
        web: WebProcess, fake_station: FakeStation, browser_page: Page) -> None:
    page = browser_page
    fake_station.availability_status = "Scheduled"
    await open_logged_in(page, web, "/configurator/settings/")

    await page.click("#availability-2-inoperative")

    await expect(page.locator(".messagelist")).to_contain_text("Connector 2 inoperative: Scheduled")
    assert fake_station.of_type(ChangeAvailabilityRequest) == [
        ChangeAvailabilityRequest(connector_id=2, operative=False)]


async def test_shutdown_asks_for_a_confirmation_first(
        web: WebProcess, fake_station: FakeStation, browser_page: Page) -> None:
    page = browser_page
    await open_logged_in(page, web, "/configurator/power/")

    await page.click("#shutdown-link")
    await page.click("#confirm-shutdown")  # the box not ticked
    await expect(page.locator(".errorlist")).to_contain_text("Tick the box to confirm.")
    assert fake_station.asked == []

    await page.check("#id_confirm")
    await page.click("#confirm-shutdown")

    await expect(page.locator("#answer")).to_have_text("The station answered: Accepted")
    assert len(fake_station.of_type(ShutdownRequest)) == 1


async def test_the_dashboard_follows_a_connector_state_on_the_bus(
        web: WebProcess, bus: Bus, browser_page: Page) -> None:
    page = browser_page
    state = ConnectorState(connector_id=1, standard=Standard.CCS, status=ConnectorStatus.CHARGING,
                           plugged=True, power_w=22_000, session_id="s1", id_tag="AABBCCDD",
                           session_started_at=utcnow())
    await bus.set(contract.CONNECTOR, state, connector_id=1)
    await open_logged_in(page, web, "/configurator/")
    status = page.locator('[data-table="connectors"] tr[data-key="1"] td[data-column="status"]')
    await expect(status).to_have_text("Charging")
    session_tag = page.locator('[data-table="sessions"] tr[data-key="s1"] td[data-column="id_tag"]')
    await expect(session_tag).to_have_text("AABBCCDD")

    finished = state.model_copy(update={"status": ConnectorStatus.FINISHING, "power_w": 0.0,
                                        "session_id": None, "at": utcnow()})
    await bus.set(contract.CONNECTOR, finished, connector_id=1)

    await expect(status).to_have_text("Finishing", timeout=WAIT_MS)
    await expect(page.locator('[data-table="sessions"] tbody tr.empty')).to_be_visible()
    await expect(page.locator("#refresh-state")).to_have_text("Refreshed every 2 s.")

    await page.context.clear_cookies()  # logged out: the values left on the page are marked old
    await expect(page.locator("#refresh-state")).to_contain_text("Logged out", timeout=WAIT_MS)
    await expect(page.locator("#dashboard-tables")).to_have_class("stale")


async def test_the_time_page_shows_the_browsers_clock_beside_the_stations(
        web: WebProcess, browser_page: Page) -> None:
    page = browser_page
    await open_logged_in(page, web, "/configurator/time/")

    await expect(page.locator("#browser-time")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:"))
    await page.click("#use-browser-time")
    value = await async_wait_until(lambda: page.input_value("#id_new_time"),
                                   what="the browser's time filled in")
    assert value.startswith(str(utcnow().year))
