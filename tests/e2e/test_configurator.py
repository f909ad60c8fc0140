"""The configurator drives the whole station: an operator logs in, sets a connector and then the
station inoperative, and the change reaches smartw, the kiosk HMI and the CSMS; the station power
limit and the HMI language set in the form are obeyed by smartw and shown by the kiosk; a viewer
changes nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import CHARGE_POINT_ID
from tests.e2e.helpers import sim, status_notification
from tests.e2e.test_smart_charging import stays_within, total_w
from tests.support.station import BusReader, Station
from tests.support.waiting import async_wait_until
from webapp.env import REPO_ROOT
from workers.sim.csms import Csms

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(240)]

PASSWORD = "a-long-e2e-password"
WAIT_MS = 15_000
STATION_LIMIT_KW = 7.5  # a Type 2 EV draws up to 22 kW


def add_user(station: Station, name: str, role: str) -> None:
    subprocess.run([sys.executable, "manage.py", "users", "add", name, "--role", role, "--password-stdin"],
                   env=station.env, cwd=REPO_ROOT, input=f"{PASSWORD}\n", text=True, check=True,
                   capture_output=True, timeout=60)


async def log_in(page: Page, station: Station, name: str, path: str) -> None:
    await page.goto(f"{station.web_url}{path}")
    await page.fill("#id_username", name)
    await page.fill("#id_password", PASSWORD)
    await page.click("#login-form [type=submit]")
    await expect(page).to_have_url(f"{station.web_url}{path}")


async def test_availability_set_in_the_configurator_blocks_the_hmi_and_tells_the_csms(
        csms: Csms, station: Station, browser_page: Page) -> None:
    add_user(station, "olga", "operator")
    await status_notification(csms, 2, "Available")
    hmi = await browser_page.context.new_page()
    await hmi.goto(f"{station.web_url}/hmi/")
    connector = hmi.locator('[data-connector="2"]')
    await expect(connector.locator(".connector-status")).to_have_text("Available", timeout=WAIT_MS)

    page = browser_page
    await log_in(page, station, "olga", "/configurator/settings/")
    await page.click("#availability-2-inoperative")
    await expect(page.locator(".messagelist")).to_contain_text("Connector 2 inoperative: Accepted")

    await status_notification(csms, 2, "Unavailable")
    await expect(connector.locator(".connector-status")).to_have_text("Unavailable", timeout=WAIT_MS)
    await expect(connector.locator(".button-start")).to_be_disabled()

    await page.click("#availability-0-inoperative")
    await expect(page.locator(".messagelist")).to_contain_text("inoperative: Accepted")
    await status_notification(csms, 0, "Unavailable")
    await expect(hmi.locator("#station-screen")).to_have_attribute("data-kind", "blocked", timeout=WAIT_MS)

    await page.click("#availability-0-operative")
    await page.click("#availability-2-operative")
    await status_notification(csms, 2, "Available")
    await expect(hmi.locator("#station-screen")).to_be_hidden(timeout=WAIT_MS)
    await expect(connector.locator(".button-start")).to_be_enabled(timeout=WAIT_MS)


async def test_the_power_limit_and_the_language_set_in_the_form_are_obeyed(
        csms: Csms, station: Station, browser_page: Page) -> None:
    add_user(station, "olga", "operator")
    await sim(station, "plug", "2", "--soc", "20")
    await status_notification(csms, 2, "Preparing")
    assert await csms.remote_start(CHARGE_POINT_ID, "TAG-2", connector_id=2) == "Accepted"
    bus = BusReader()
    try:
        async def charging_above_the_limit() -> bool:
            return total_w(bus, (2,)) > STATION_LIMIT_KW * 1000 * 1.2
        await async_wait_until(charging_above_the_limit, timeout_s=90,
                               what="the Type 2 EV drawing more than the limit")

        page = browser_page
        await log_in(page, station, "olga", "/configurator/settings/")
        await page.select_option("#id_hmi_language", "ru")
        await page.fill("#id_station_power_limit_kw", str(STATION_LIMIT_KW))
        await page.click("#settings-save")
        await expect(page.locator(".messagelist")).to_contain_text("Station power limit, kW: Saved")

        await stays_within(bus, (2,), STATION_LIMIT_KW * 1000, "the Type 2 session")
        assert "7.5 kW" in station.manage("limit", "show").stdout
    finally:
        bus.close()

    hmi = await page.context.new_page()
    await hmi.goto(f"{station.web_url}/hmi/")
    await expect(hmi.locator("html")).to_have_attribute("lang", "ru", timeout=WAIT_MS)


async def test_a_viewer_sees_the_settings_but_cannot_change_them(station: Station,
                                                                 browser_page: Page) -> None:
    add_user(station, "vic", "viewer")
    page = browser_page
    await log_in(page, station, "vic", "/configurator/settings/")
    await expect(page.locator("#availability-2-inoperative")).to_have_count(0)
    token = await page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
    assert token, "the page carries a CSRF token (the logout form's)"
    for form in ({"hmi_language": "ru"}, {"connector_id": "2", "operative": "false"}):
        response = await page.request.post(f"{station.web_url}/configurator/settings/",
                                           form={"csrfmiddlewaretoken": token, **form},
                                           headers={"Referer": f"{station.web_url}/configurator/settings/"})
        assert response.status == 403, await response.text()
    assert "no limit in force" in station.manage("limit", "show").stdout
    assert station.status()["connectors"][1]["status"] == "Available"


async def test_free_mode_and_a_new_csms_url_set_in_the_configurator_apply_at_once(
        csms: Csms, second_csms: Csms, station: Station, browser_page: Page) -> None:
    """Free mode on: a plugged EV starts with the configured idTag, no card; a new CSMS URL: the
    station boots at the new central system and its transaction messages go there, no restart."""
    add_user(station, "olga", "operator")
    page = browser_page
    await log_in(page, station, "olga", "/configurator/settings/")
    await page.check("#id_enabled")
    await page.fill("#id_id_tag", "SITE-7")
    await page.click("#free-mode-save")
    await expect(page.locator(".messagelist")).to_contain_text("Free mode on: Accepted")

    await sim(station, "plug", "2", "--soc", "50")
    start = await csms.wait_for_call("StartTransaction", timeout_s=30)
    assert (start.payload["connectorId"], start.payload["idTag"]) == (2, "SITE-7")
    assert csms.calls("Authorize") == []

    await page.fill("#id_csms_url", second_csms.url)
    await page.click("#ocpp-save")
    await expect(page.locator(".messagelist")).to_contain_text("CsmsUrl: Accepted")
    boot = await second_csms.wait_for_call("BootNotification", timeout_s=30)
    assert boot.charge_point_id == CHARGE_POINT_ID
    await second_csms.wait_for_call("MeterValues", timeout_s=30)  # the running session reports there
    assert station.children()["ocpp16"].restarts == 0
