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
from workers.common.redis_server import free_port

pytestmark = pytest.mark.browser

DOC_SCREENS = REPO_ROOT / "docs" / "screens"  # refreshed only with UPDATE_SCREENSHOTS=1
WAIT_MS = 10_000
RECONNECT_WAIT_MS = 20_000  # the page's backoff is 1 s, 2 s, 4 s ...
MIN_TOUCH_PX = 88  # a gloved finger on the station's touch screen (hmi.css: max(88px, 9vh))
SCREENS = ((1280, 800), (1920, 1080))  # the reference station's touch screen, and a full HD one
STANDARDS = (Standard.CCS, Standard.TYPE2, Standard.CHADEMO, Standard.GBT)  # as in station.sim.toml

# Returns one line per layout fault: a card off screen or over another, an element sticking out
# of its card or cut (wider than its box), a visible button whose centre a touch would not reach.
LAYOUT_PROBLEMS_JS = """() => {
  const problems = [];
  const shown = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== "hidden";
  };
  const name = (el) => `${el.closest("[data-connector]") ? "connector "
    + el.closest("[data-connector]").dataset.connector + " " : ""}${el.className || el.tagName}`;
  const cards = [...document.querySelectorAll(".connector")];
  const boxes = cards.map((card) => card.getBoundingClientRect());
  cards.forEach((card, i) => {
    const box = boxes[i];
    if (box.left < 0 || box.top < 0 || box.right > innerWidth || box.bottom > innerHeight) {
      problems.push(`${name(card)}: outside the screen`);
    }
    boxes.slice(i + 1).forEach((other, j) => {
      if (box.left < other.right && other.left < box.right && box.top < other.bottom
          && other.top < box.bottom) problems.push(`${name(card)}: overlaps ${name(cards[i + 1 + j])}`);
    });
    card.querySelectorAll("*").forEach((el) => {
      if (!shown(el)) return;
      const inner = el.getBoundingClientRect();
      if (inner.left < box.left - 0.5 || inner.top < box.top - 0.5 || inner.right > box.right + 0.5
          || inner.bottom > box.bottom + 0.5) problems.push(`${name(el)}: sticks out of its card`);
      if (getComputedStyle(el).display !== "inline" && el.scrollWidth > el.clientWidth + 1) {
        problems.push(`${name(el)}: text cut (${el.scrollWidth} px in ${el.clientWidth} px)`);
      }
    });
  });
  document.querySelectorAll("button").forEach((button) => {
    if (!shown(button)) return;
    const box = button.getBoundingClientRect();
    const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    if (!hit || !button.contains(hit)) problems.push(`${name(button)}: covered by ${hit && name(hit)}`);
  });
  return problems;
}"""


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
    """Connector 1 charging, connector 2 waiting for a card, 3 free, 4 charging, the CSMS connected."""
    await bus.set(contract.STATION, StationState(status=ConnectorStatus.AVAILABLE, estop=False,
                                                 io_online=True))
    await bus.set(contract.OCPP_LINK, OcppLink(connected=True, registration="Accepted",
                                               csms_url="ws://127.0.0.1:9000/ocpp"))
    state = charging_state()
    await bus.set(contract.CONNECTOR, state, connector_id=1)
    await bus.set(contract.CONNECTOR, ConnectorState(
        connector_id=2, standard=Standard.TYPE2, status=ConnectorStatus.PREPARING, plugged=True,
        awaiting_card=True, info="awaiting_card_or_ev"), connector_id=2)
    await bus.set(contract.CONNECTOR, ConnectorState(
        connector_id=3, standard=Standard.CHADEMO, status=ConnectorStatus.AVAILABLE), connector_id=3)
    await bus.set(contract.CONNECTOR, charging_state(
        connector_id=4, standard=Standard.GBT, power_w=86_000, session_energy_wh=4_870, soc=71,
        target_soc=95, session_id="s4", session_started_at=utcnow() - timedelta(minutes=6)),
        connector_id=4)
    return state


def station_toml(count: int) -> str:
    """A station.toml with the first `count` connectors of the simulated station's four."""
    head = """
[station]
max_power_kw = 300.0

[buses.tcp]
kind = "modbus_tcp"
host = "127.0.0.1"
port = 1502

[io_module]
bus = "tcp"
device_id = 10
estop_input = 0

[rfid]
port = "{run_dir}/ttyRFID"
"""
    connectors = [f"""
[[connectors]]
id = {number}
standard = "{standard.value}"
max_power_kw = {22.0 if standard is Standard.TYPE2 else 150.0}
contactor_coil = {number}
meter = {{ bus = "tcp", device_id = {number}, model = "sdm630" }}
controller = {{ bus = "tcp", device_id = {20 + number} }}
""" for number, standard in enumerate(STANDARDS[:count], start=1)]
    return head + "".join(connectors)


def crowded_states() -> list[ConnectorState]:
    """A state per connector that fills its card: the largest values, the longest texts."""
    return [
        charging_state(power_w=150_000, session_energy_wh=123_450, soc=57,
                       session_started_at=utcnow() - timedelta(hours=10, minutes=25)),
        ConnectorState(connector_id=2, standard=Standard.TYPE2, status=ConnectorStatus.PREPARING,
                       plugged=True, awaiting_card=True, info="awaiting_card_or_ev"),
        ConnectorState(connector_id=3, standard=Standard.CHADEMO, status=ConnectorStatus.FAULTED,
                       info="contactor_welded"),
        charging_state(connector_id=4, standard=Standard.GBT, status=ConnectorStatus.SUSPENDED_EV,
                       info="ev_paused", power_w=0, soc=35, target_soc=90, session_id="s4"),
    ]


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
    four = page.locator('[data-connector="4"]')
    await expect(four.locator('[data-field="soc"]')).to_have_text("71")
    await expect(four.locator(".connector-standard")).to_have_text("GB/T")  # as printed on cars
    await expect(four).to_have_attribute("data-current", "dc")
    await expect(page.locator('[data-connector="2"]')).to_have_attribute("data-current", "ac")
    for width, height in SCREENS:
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=screens / f"hmi-{width}x{height}.png")
        await assert_layout_fits(page)

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


@pytest.mark.parametrize("count", [1, 2, 3, 4])
async def test_every_card_fits_the_screen_and_every_button_takes_a_touch(
        count: int, fake_smartw: FakeSmartw, bus: Bus, browser_page: Page, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "station.toml"
    config.write_text(station_toml(count))
    monkeypatch.setenv("STATION_CONFIG", str(config))
    states = crowded_states()[:count]
    await bus.set(contract.STATION, StationState(status=ConnectorStatus.AVAILABLE, estop=False,
                                                 io_online=True))
    for state in states:
        await bus.set(contract.CONNECTOR, state, connector_id=state.connector_id)
    web = WebProcess(free_port(), tmp_path / "web.log")
    web.start()
    try:
        page = browser_page
        await open_hmi(page, web)
        await expect(page.locator(".connector")).to_have_count(count)
        await _assert_fits_on_every_screen(page)

        stoppable = [state.connector_id for state in states if state.status is not ConnectorStatus.FAULTED]
        for connector_id in stoppable:
            await page.locator(f'[data-connector="{connector_id}"] .button-stop').click(timeout=WAIT_MS)
        await async_wait_until(_async(lambda: len(fake_smartw.stops) == len(stoppable)),
                               what="a StopRequest at smartw from every card with a session")
        assert sorted(stop.connector_id for stop in fake_smartw.stops) == stoppable

        await page.locator("#lang").click()  # Russian: the longer texts
        await bus.set(contract.STATION, StationState(status=ConnectorStatus.UNAVAILABLE, estop=True,
                                                     io_online=True))
        await bus.publish(contract.CONNECTOR_CHANGES, states[0].model_copy(update={"at": utcnow()}))
        await bus.publish(contract.AUTH_RESULTS, AuthResult(connector_id=1, id_tag="DEADBEEF",
                                                            status=AuthorizationStatus.BLOCKED))
        await expect(page.locator("#banner-estop")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("#notice")).to_have_text("Карта заблокирована", timeout=WAIT_MS)
        await _assert_fits_on_every_screen(page)
    finally:
        assert web.stop() == 0
    await expect(page.locator("#banner-connection")).to_be_visible(timeout=WAIT_MS)
    await _assert_fits_on_every_screen(page)  # both banners shown


async def _assert_fits_on_every_screen(page: Page) -> None:
    for width, height in SCREENS:
        await page.set_viewport_size({"width": width, "height": height})
        await assert_layout_fits(page)


async def assert_layout_fits(page: Page) -> None:
    """Cards on screen and apart, nothing cut, every button reachable and finger-sized."""
    problems = await page.evaluate(LAYOUT_PROBLEMS_JS)
    assert problems == [], f"at {page.viewport_size}:\n" + "\n".join(problems)
    for index in range(await page.locator(".button").count()):
        box = await page.locator(".button").nth(index).bounding_box()
        assert box is not None
        assert box["height"] >= MIN_TOUCH_PX and box["width"] >= MIN_TOUCH_PX, (page.viewport_size, box)


def _async(probe):
    async def wrapped():
        return probe()

    return wrapped
