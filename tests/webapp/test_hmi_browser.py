"""The kiosk page in headless Chromium against the real web service and the real bus."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from bus import Bus, contract
from bus.enums import AuthorizationStatus, ConnectorStatus, Standard, StopReason
from bus.messages import AuthResult, ConnectorState, OcppLink, StationState, StopRequest, utcnow
from tests.support.waiting import async_wait_until
from tests.webapp.conftest import FakeSmartw, WebProcess
from webapp.env import REPO_ROOT

pytestmark = pytest.mark.browser

DOC_SCREENS = REPO_ROOT / "docs" / "screens"  # refreshed only with UPDATE_SCREENSHOTS=1
WAIT_MS = 10_000
RECONNECT_WAIT_MS = 20_000  # the page's backoff is 1 s, 2 s, 4 s ...
MIN_TOUCH_PX = 80  # a gloved finger on the station's touch screen


def charging_state(**changes: object) -> ConnectorState:
    values: dict[str, object] = {
        "connector_id": 1, "standard": Standard.CCS, "status": ConnectorStatus.CHARGING, "plugged": True,
        "contactor_closed": True, "power_w": 50_000, "session_energy_wh": 12_340, "soc": 42,
        "target_soc": 80, "session_id": "s1", "id_tag": "AABBCCDD",
        "session_started_at": utcnow() - timedelta(minutes=25),
    }
    values.update(changes)
    return ConnectorState(**values)  # type: ignore[arg-type]


async def station_in_service(bus: Bus) -> ConnectorState:
    """Connector 1 charging, connector 2 waiting for a card, the CSMS connected."""
    await bus.set(contract.STATION, StationState(status=ConnectorStatus.AVAILABLE, estop=False,
                                                 io_online=True))
    await bus.set(contract.OCPP_LINK, OcppLink(connected=True, registration="Accepted",
                                               csms_url="ws://127.0.0.1:9000/ocpp"))
    state = charging_state()
    await bus.set(contract.CONNECTOR, state, connector_id=1)
    await bus.set(contract.CONNECTOR, ConnectorState(
        connector_id=2, standard=Standard.TYPE2, status=ConnectorStatus.PREPARING, plugged=True,
        awaiting_card=True, info="awaiting_card_or_ev"), connector_id=2)
    return state


async def open_hmi(page: Page, web: WebProcess) -> None:
    await page.goto(f"{web.url}/hmi/")
    await expect(page.locator('[data-connector="1"] .connector-status')).to_have_text("Charging",
                                                                                     timeout=WAIT_MS)
    await expect(page.locator("#banner-connection")).to_be_hidden()


async def test_live_change_shows_and_stop_button_reaches_smartw(
        web_service: WebProcess, fake_smartw: FakeSmartw, bus: Bus, browser_page: Page,
        tmp_path: Path) -> None:
    page = browser_page
    state = await station_in_service(bus)
    await open_hmi(page, web_service)
    one = page.locator('[data-connector="1"]')
    await expect(page.locator('[data-connector="2"] .connector-prompt')).to_have_text("Present your card")
    await expect(one.locator('[data-field="power"]')).to_have_text("50.0")

    changed = state.model_copy(update={"power_w": 72_400, "soc": 57, "at": utcnow()})
    await bus.set(contract.CONNECTOR, changed, connector_id=1)
    await bus.publish(contract.CONNECTOR_CHANGES, changed)
    await expect(one.locator('[data-field="power"]')).to_have_text("72.4", timeout=WAIT_MS)
    await expect(one.locator('[data-field="soc"]')).to_have_text("57")
    await expect(one.locator(".progress-label")).to_have_text("57 % \u2192 80 %")

    screens = DOC_SCREENS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    screens.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 800), (1920, 1080)):
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=screens / f"hmi-{width}x{height}.png")
        await _assert_buttons_fit_and_are_touch_sized(page, height)

    await one.locator(".button-stop").click()
    await async_wait_until(_async(lambda: fake_smartw.stops), what="the StopRequest at smartw")
    assert fake_smartw.stops == [StopRequest(connector_id=1, reason=StopReason.LOCAL)]
    await expect(page.locator("#notice")).to_have_text("Stopping", timeout=WAIT_MS)


async def test_card_result_and_emergency_stop_are_shown_in_the_chosen_language(
        web_service: WebProcess, bus: Bus, browser_page: Page) -> None:
    page = browser_page
    await station_in_service(bus)
    await open_hmi(page, web_service)
    await page.locator("#lang").click()
    await expect(page.locator('[data-connector="1"] .connector-status')).to_have_text("Зарядка")

    await bus.publish(contract.AUTH_RESULTS, AuthResult(connector_id=2, id_tag="DEADBEEF",
                                                        status=AuthorizationStatus.BLOCKED))
    await expect(page.locator("#notice")).to_have_text("Карта заблокирована", timeout=WAIT_MS)

    faulted = ConnectorState(connector_id=2, standard=Standard.TYPE2, status=ConnectorStatus.FAULTED,
                             info="estop")
    await bus.set(contract.STATION, StationState(status=ConnectorStatus.UNAVAILABLE, estop=True,
                                                 io_online=True))
    await bus.publish(contract.CONNECTOR_CHANGES, faulted)
    await expect(page.locator("#banner-estop")).to_be_visible(timeout=WAIT_MS)
    two = page.locator('[data-connector="2"]')
    await expect(two.locator(".connector-info")).to_have_text("Нажата аварийная кнопка")
    await expect(two.locator(".button-start")).to_be_disabled()


async def test_page_marks_data_stale_while_the_web_service_is_away_and_recovers(
        web_service: WebProcess, bus: Bus, browser_page: Page) -> None:
    page = browser_page
    await station_in_service(bus)
    await open_hmi(page, web_service)

    assert web_service.stop() == 0
    await expect(page.locator("#banner-connection")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("body")).to_have_class(re.compile(r"\bstale\b"))
    one = page.locator('[data-connector="1"]')
    await expect(one.locator('[data-field="power"]')).to_have_text("50.0")  # last value kept
    await expect(one.locator(".button-stop")).to_be_disabled()

    web_service.start()
    await expect(page.locator("#banner-connection")).to_be_hidden(timeout=RECONNECT_WAIT_MS)
    await expect(page.locator("body")).not_to_have_class(re.compile(r"\bstale\b"))
    await expect(one.locator(".button-stop")).to_be_enabled()


async def _assert_buttons_fit_and_are_touch_sized(page: Page, viewport_height: int) -> None:
    buttons = page.locator(".button")
    assert await buttons.count() == 4
    for index in range(4):
        box = await buttons.nth(index).bounding_box()
        assert box is not None
        assert box["y"] + box["height"] <= viewport_height, "a button is below the screen's edge"
        assert box["height"] >= MIN_TOUCH_PX and box["width"] >= MIN_TOUCH_PX


def _async(probe):
    async def wrapped():
        return probe()

    return wrapped
