"""The kiosk page in headless Chromium against the real web service and the real bus.

smartw is played by the test: its states on the bus and a fake smartw answering start/stop.
The web service runs with a migrated database of its own, so the operator settings it keeps
publishing (settings_publisher.py) are the ones the test configured. One web service serves
the tests of a module (starting one takes seconds); each test begins with no settings stored.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from bus import Bus, contract
from bus.enums import AuthorizationStatus, ConnectorStatus, Standard, StartSource, StopReason
from bus.messages import (
    AuthResult,
    ConnectorState,
    OcppLink,
    StartRequest,
    StationState,
    StopRequest,
    utcnow,
)
from tests.support.database import sqlite_url
from tests.support.waiting import async_wait_until
from tests.webapp.conftest import FakeSmartw, WebProcess
from webapp.env import REPO_ROOT
from webapp.station import operator_settings
from workers.common.redis_server import free_port

pytestmark = pytest.mark.browser

DOC_SCREENS = REPO_ROOT / "docs" / "screens"  # refreshed only with UPDATE_SCREENSHOTS=1
WAIT_MS = 10_000
RECONNECT_WAIT_MS = 20_000  # the page's backoff is 1 s, 2 s, 4 s ...
MIN_TOUCH_PX = 88  # a gloved finger on the station's touch screen (hmi.css: max(88px, 9vh))
SCREENS = ((1280, 800), (1920, 1080))  # the reference station's touch screen, and a full HD one
STANDARDS = (Standard.CCS, Standard.TYPE2, Standard.CHADEMO, Standard.GBT)  # as in station.sim.toml
CONNECTOR_LINK = "https://app.example/start/{charge_point_id}/{connector_id}"
IDLE = "01:01"  # mm:ss past hmi.js IDLE_MS: the page forgets a driver's language

# Returns one line per layout fault: a card off screen or over another, an element sticking out
# of its card or screen or cut (wider than its box), a visible button whose centre a touch would
# not reach (a station-wide screen over the cards is meant to cover their buttons).
LAYOUT_PROBLEMS_JS = """() => {
  const problems = [];
  const shown = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== "hidden";
  };
  const name = (el) => `${el.closest("[data-connector]") ? "connector "
    + el.closest("[data-connector]").dataset.connector + " " : ""}${el.className.baseVal ?? el.className
    ?? el.tagName}`;
  const contained = (box, el) => {
    el.querySelectorAll("*").forEach((inner) => {
      if (!shown(inner)) return;
      const b = inner.getBoundingClientRect();
      if (b.left < box.left - 0.5 || b.top < box.top - 0.5 || b.right > box.right + 0.5
          || b.bottom > box.bottom + 0.5) problems.push(`${name(inner)}: sticks out of ${name(el)}`);
      if (getComputedStyle(inner).display !== "inline" && inner.scrollWidth > inner.clientWidth + 1) {
        problems.push(`${name(inner)}: text cut (${inner.scrollWidth} px in ${inner.clientWidth} px)`);
      }
    });
  };
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
    contained(box, card);
  });
  document.querySelectorAll(".screen").forEach((screen) => {
    if (shown(screen)) contained(screen.getBoundingClientRect(), screen);
  });
  document.querySelectorAll("button").forEach((button) => {
    if (!shown(button)) return;
    const box = button.getBoundingClientRect();
    const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    const covered = !hit || !button.contains(hit);
    if (covered && !(hit && hit.closest(".screen"))) {
      problems.push(`${name(button)}: covered by ${hit && name(hit)}`);
    }
  });
  return problems;
}"""


# ---- the web service with its own database ------------------------------------------------


@dataclass
class Kiosk:
    web: WebProcess
    db: Path

    def fresh(self) -> Kiosk:
        """No operator settings stored, and the web service running (a test may have stopped it)."""
        with contextlib.closing(sqlite3.connect(self.db)) as connection, connection:
            connection.execute("DELETE FROM station_stationsetting")
        assert self.web.process is not None
        if self.web.process.poll() is not None:
            self.web.start()
        return self

    async def configure(self, bus: Bus, **values: Any) -> None:
        """Store operator settings as the configurator does, and publish them at once as its
        publish_now() does (the web service's own refresh then keeps publishing the same)."""
        with contextlib.closing(sqlite3.connect(self.db)) as connection, connection:
            connection.executemany(
                "INSERT OR REPLACE INTO station_stationsetting (name, value, changed_at, changed_by) "
                "VALUES (?, ?, datetime('now'), 'test')",
                [(name, json.dumps(value)) for name, value in values.items()])
        await bus.set(contract.HMI_SETTINGS, load_settings(self.db).hmi())


def load_settings(db: Path) -> operator_settings.OperatorSettings:
    """operator_settings.load(), read from the web service's database file."""
    with contextlib.closing(sqlite3.connect(db)) as connection:
        rows = connection.execute("SELECT name, value FROM station_stationsetting").fetchall()
    values = {spec.name: spec.default for spec in operator_settings.SETTINGS}
    values.update({name: json.loads(value) for name, value in rows})
    return operator_settings.OperatorSettings(**values)


@contextlib.contextmanager
def running_kiosk(db: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kiosk]:
    """The web service on a free port with `db` as its database; stopped (exit 0) at the end."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url(db))
    web = WebProcess(free_port(), folder / "web.log")
    web.start()
    try:
        yield Kiosk(web, db)
    finally:
        assert web.stop() == 0


@contextlib.contextmanager
def kiosk_for_module(template: Path, folder: Path) -> Iterator[Kiosk]:
    """running_kiosk() for a whole test module, on a copy of the migrated database `template`."""
    db = folder / "station.sqlite3"
    with contextlib.closing(sqlite3.connect(template)) as source, \
            contextlib.closing(sqlite3.connect(db)) as target:
        source.backup(target)
    with pytest.MonkeyPatch.context() as patch, running_kiosk(db, folder, patch) as running:
        yield running


@pytest.fixture(scope="module")
def module_kiosk(redis_server: str, migrated_template: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    with kiosk_for_module(migrated_template, tmp_path_factory.mktemp("kiosk")) as running:
        yield running


@pytest.fixture
def kiosk(module_kiosk: Kiosk, redis_client) -> Kiosk:
    return module_kiosk.fresh()


# ---- states smartw would write ---------------------------------------------------------------


def charging_state(**changes: object) -> ConnectorState:
    values: dict[str, object] = {
        "connector_id": 1, "standard": Standard.CCS, "status": ConnectorStatus.CHARGING, "plugged": True,
        "contactor_closed": True, "power_w": 50_000, "session_energy_wh": 12_340, "soc": 42,
        "target_soc": 80, "session_id": "s1", "id_tag": "AABBCCDD",
        "session_started_at": utcnow() - timedelta(minutes=25),
    }
    values.update(changes)
    return ConnectorState(**values)  # type: ignore[arg-type]


def idle_state(connector_id: int, **changes: object) -> ConnectorState:
    values: dict[str, object] = {"connector_id": connector_id, "standard": STANDARDS[connector_id - 1],
                                 "status": ConnectorStatus.AVAILABLE}
    values.update(changes)
    return ConnectorState(**values)  # type: ignore[arg-type]


async def show(bus: Bus, state: ConnectorState) -> None:
    """A connector change as smartw makes it: the key, then the stream entry."""
    state = state.model_copy(update={"at": utcnow()})
    await bus.set(contract.CONNECTOR, state, connector_id=state.connector_id)
    await bus.publish(contract.CONNECTOR_CHANGES, state)


async def set_station(bus: Bus, **changes: object) -> None:
    values: dict[str, object] = {"status": ConnectorStatus.AVAILABLE, "estop": False, "io_online": True}
    values.update(changes)
    await bus.set(contract.STATION, StationState(**values))  # type: ignore[arg-type]


async def set_csms(bus: Bus, *, connected: bool) -> None:
    await bus.set(contract.OCPP_LINK, OcppLink(connected=connected, registration="Accepted",
                                               csms_url="ws://127.0.0.1:9000/ocpp"))


async def station_in_service(bus: Bus) -> ConnectorState:
    """Connector 1 charging, connector 2 waiting for a card, 3 free, 4 charging, the CSMS connected."""
    await set_station(bus)
    await set_csms(bus, connected=True)
    state = charging_state()
    await bus.set(contract.CONNECTOR, state, connector_id=1)
    waiting = idle_state(2, status=ConnectorStatus.PREPARING, plugged=True, awaiting_card=True,
                         info="awaiting_card_or_ev")
    await bus.set(contract.CONNECTOR, waiting, connector_id=2)
    await bus.set(contract.CONNECTOR, idle_state(3), connector_id=3)
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
        idle_state(2, status=ConnectorStatus.PREPARING, plugged=True, awaiting_card=True,
                   info="awaiting_card_or_ev"),
        idle_state(3, status=ConnectorStatus.FAULTED, info="contactor_welded"),
        charging_state(connector_id=4, standard=Standard.GBT, status=ConnectorStatus.SUSPENDED_EV,
                       info="ev_paused", power_w=0, soc=35, target_soc=90, session_id="s4"),
    ]


# ---- page helpers ----------------------------------------------------------------------------


def card(page: Page, connector_id: int):
    return page.locator(f'[data-connector="{connector_id}"]')


async def open_hmi(page: Page, web: WebProcess, *, status: str = "Charging") -> None:
    await page.goto(f"{web.url}/hmi/")
    await expect(card(page, 1).locator(".connector-status")).to_have_text(status, timeout=WAIT_MS)
    await expect(page.locator("#banner-connection")).to_be_hidden()


def screens_folder(tmp_path: Path) -> Path:
    folder = DOC_SCREENS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def screenshots(page: Page, folder: Path, name: str) -> None:
    """`<name>-<width>x<height>.png` at each screen size, each checked for layout faults."""
    for width, height in SCREENS:
        await page.set_viewport_size({"width": width, "height": height})
        await assert_layout_fits(page)
        await page.screenshot(path=folder / f"{name}-{width}x{height}.png")


async def assert_fits_on_every_screen(page: Page) -> None:
    for width, height in SCREENS:
        await page.set_viewport_size({"width": width, "height": height})
        await assert_layout_fits(page)


async def assert_layout_fits(page: Page) -> None:
    """Cards on screen and apart, nothing cut, every button reachable and finger-sized."""
    problems = await page.evaluate(LAYOUT_PROBLEMS_JS)
    assert problems == [], f"at {page.viewport_size}:\n" + "\n".join(problems)
    buttons = page.locator(".button:visible")
    for index in range(await buttons.count()):
        box = await buttons.nth(index).bounding_box()
        assert box is not None
        assert box["height"] >= MIN_TOUCH_PX and box["width"] >= MIN_TOUCH_PX, (page.viewport_size, box)


def _async(probe):
    async def wrapped():
        return probe()

    return wrapped


# ---- tests -----------------------------------------------------------------------------------


async def test_live_change_shows_and_stop_button_reaches_smartw(
        kiosk: Kiosk, fake_smartw: FakeSmartw, bus: Bus, browser_page: Page, tmp_path: Path) -> None:
    page = browser_page
    await kiosk.configure(bus, hmi_stop_needs_card=False, qr_connector_link=CONNECTOR_LINK)
    state = await station_in_service(bus)
    await open_hmi(page, kiosk.web)
    one = card(page, 1)
    await expect(card(page, 2).locator(".connector-prompt")).to_have_text("Present your card")
    await expect(one.locator('[data-field="power"]')).to_have_text("50.0")

    changed = state.model_copy(update={"power_w": 72_400, "soc": 57, "at": utcnow()})
    await bus.set(contract.CONNECTOR, changed, connector_id=1)
    await bus.publish(contract.CONNECTOR_CHANGES, changed)
    await expect(one.locator('[data-field="power"]')).to_have_text("72.4", timeout=WAIT_MS)
    await expect(one.locator('[data-field="soc"]')).to_have_text("57")
    await expect(one.locator(".progress-label")).to_have_text("57 % \u2192 80 %")
    await expect(one.locator('[data-field="elapsed"]')).to_have_text(re.compile(r"^0:2[56]:\d\d$"))

    four = card(page, 4)
    await expect(four.locator('[data-field="soc"]')).to_have_text("71")
    await expect(four.locator(".connector-standard")).to_have_text("GB/T")  # as printed on cars
    await expect(four.locator(".standard-icon use")).to_have_attribute("href", "#std-GBT")
    await expect(four).to_have_attribute("data-current", "dc")
    await expect(card(page, 2)).to_have_attribute("data-current", "ac")
    await expect(card(page, 3)).to_have_attribute("data-view", "qr")  # free: the app's deep link
    await expect(card(page, 3).locator(".qr-caption")).to_have_text("Scan to charge with the app")
    await expect(one).to_have_attribute("data-view", "metrics")
    await screenshots(page, screens_folder(tmp_path), "hmi")

    await one.locator(".button-stop").click()
    await async_wait_until(_async(lambda: fake_smartw.stops), what="the StopRequest at smartw")
    assert fake_smartw.stops == [StopRequest(connector_id=1, reason=StopReason.LOCAL)]
    await expect(page.locator("#notice")).to_have_text("Stopping", timeout=WAIT_MS)


@pytest.mark.parametrize("stop_needs_card", [True, False], ids=["stop-by-card", "stop-by-button"])
async def test_a_whole_session_from_start_to_its_summary(
        stop_needs_card: bool, kiosk: Kiosk, fake_smartw: FakeSmartw, bus: Bus, browser_page: Page) -> None:
    page = browser_page
    await kiosk.configure(bus, hmi_stop_needs_card=stop_needs_card)
    await set_station(bus)
    await set_csms(bus, connected=True)
    for connector_id in (1, 2, 3, 4):
        await bus.set(contract.CONNECTOR, idle_state(connector_id), connector_id=connector_id)
    await open_hmi(page, kiosk.web, status="Available")
    one = card(page, 1)
    await expect(one.locator(".button-stop")).to_be_disabled()

    await show(bus, idle_state(1, status=ConnectorStatus.PREPARING, plugged=True, info="awaiting_card_or_ev"))
    await expect(one.locator(".connector-status")).to_have_text("Preparing", timeout=WAIT_MS)
    await one.locator(".button-start").click()
    await async_wait_until(_async(lambda: fake_smartw.starts), what="the StartRequest at smartw")
    assert fake_smartw.starts == [StartRequest(connector_id=1, id_tag=None, source=StartSource.HMI)]
    await show(bus, idle_state(1, status=ConnectorStatus.PREPARING, plugged=True, awaiting_card=True,
                               info="present_card"))
    await expect(one.locator(".connector-prompt")).to_have_text("Present your card", timeout=WAIT_MS)

    await bus.publish(contract.AUTH_RESULTS, AuthResult(connector_id=1, id_tag="AABBCCDD",
                                                        status=AuthorizationStatus.ACCEPTED))
    await expect(page.locator("#notice")).to_have_text("Card accepted", timeout=WAIT_MS)
    await expect(page.locator("#notice")).to_have_attribute("data-kind", "good")
    started = utcnow() - timedelta(minutes=12, seconds=30)
    session = charging_state(power_w=61_200, session_energy_wh=8_650, soc=48, target_soc=80,
                             session_started_at=started)
    await show(bus, session)
    await expect(one.locator(".connector-prompt")).to_be_hidden(timeout=WAIT_MS)
    await expect(one.locator('[data-field="power"]')).to_have_text("61.2")
    await expect(one.locator('[data-field="energy"]')).to_have_text("8.65")
    await expect(one.locator('[data-field="soc"]')).to_have_text("48")
    await expect(one.locator(".progress-fill")).to_have_attribute("style", re.compile(r"width: 48%"))
    await expect(one.locator(".progress-target")).to_have_attribute("style", re.compile(r"left: 80%"))
    await expect(one.locator('[data-field="elapsed"]')).to_have_text(re.compile(r"^0:1[23]:\d\d$"))

    await one.locator(".button-stop").click()
    if stop_needs_card:
        await expect(one.locator(".connector-prompt")).to_have_text(
            "Present the card that started this charging", timeout=WAIT_MS)
        await expect(one.locator(".button-stop")).to_be_enabled()  # pressing again asks again
        assert fake_smartw.stops == []  # the web service refused it: smartw never heard of it
        # The card: smartw stops the session itself (the same card, workers/smartw/requests.py).
        await bus.publish(contract.AUTH_RESULTS, AuthResult(connector_id=1, id_tag="AABBCCDD",
                                                            status=AuthorizationStatus.ACCEPTED))
    else:
        await async_wait_until(_async(lambda: fake_smartw.stops), what="the StopRequest at smartw")
        assert fake_smartw.stops == [StopRequest(connector_id=1, reason=StopReason.LOCAL)]
    await show(bus, session.model_copy(update={"session_energy_wh": 9_870, "power_w": 0}))
    await show(bus, idle_state(1, status=ConnectorStatus.FINISHING, plugged=True, info="unplug_ev"))

    summary = one.locator(".connector-summary")
    await expect(summary).to_be_visible(timeout=WAIT_MS)
    await expect(summary.locator(".summary-title")).to_have_text("Charging finished")
    await expect(summary.locator('[data-field="summary-energy"]')).to_have_text("9.87")
    await expect(summary.locator('[data-field="summary-duration"]')).to_have_text(
        re.compile(r"^0:1[23]:\d\d$"))
    await expect(one.locator(".connector-prompt")).to_be_hidden()
    await summary.click()
    await expect(summary).to_be_hidden()
    await expect(one).to_have_attribute("data-view", "metrics")


async def test_the_configured_language_is_the_default_and_a_drivers_choice_is_temporary(
        kiosk: Kiosk, bus: Bus, browser_page: Page) -> None:
    page = browser_page
    await kiosk.configure(bus, hmi_language="ru")
    await station_in_service(bus)
    await page.clock.install()
    await open_hmi(page, kiosk.web, status="Зарядка")
    await expect(page.locator("html")).to_have_attribute("lang", "ru")

    await page.locator("#lang").click()  # a driver switches
    await expect(card(page, 1).locator(".connector-status")).to_have_text("Charging")
    await kiosk.configure(bus, qr_feedback_url="https://feedback.example/x")  # settings republished
    await expect(page.locator("#qr-open")).to_be_visible(timeout=WAIT_MS)
    await expect(card(page, 1).locator(".connector-status")).to_have_text("Charging")  # still theirs

    await page.clock.fast_forward(IDLE)  # the driver walked away
    await expect(card(page, 1).locator(".connector-status")).to_have_text("Зарядка")

    await page.locator("#lang").click()
    await expect(card(page, 1).locator(".connector-status")).to_have_text("Charging")
    await show(bus, idle_state(1, status=ConnectorStatus.FINISHING, plugged=True, info="unplug_ev"))
    summary = card(page, 1).locator(".connector-summary")
    await expect(summary.locator(".summary-title")).to_have_text("Charging finished", timeout=WAIT_MS)
    await summary.click()  # the session is over and its driver is done
    await expect(card(page, 1).locator(".connector-status")).to_have_text("Завершение")

    await kiosk.configure(bus, hmi_language="en")  # no driver's choice: the page follows at once
    await expect(card(page, 1).locator(".connector-status")).to_have_text("Finishing", timeout=WAIT_MS)


async def test_card_result_and_faults_are_shown_in_the_chosen_language(
        kiosk: Kiosk, bus: Bus, browser_page: Page) -> None:
    page = browser_page
    await station_in_service(bus)
    await open_hmi(page, kiosk.web)
    await page.locator("#lang").click()
    await expect(card(page, 1).locator(".connector-status")).to_have_text("Зарядка")

    await bus.publish(contract.AUTH_RESULTS, AuthResult(connector_id=2, id_tag="DEADBEEF",
                                                        status=AuthorizationStatus.BLOCKED))
    await expect(page.locator("#notice")).to_have_text("Карта заблокирована", timeout=WAIT_MS)
    await expect(page.locator("#notice")).to_have_attribute("data-kind", "bad")

    two, three = card(page, 2), card(page, 3)
    await show(bus, idle_state(2, status=ConnectorStatus.FAULTED, info="contactor_welded"))
    await expect(two.locator(".connector-status")).to_have_text("Неисправность", timeout=WAIT_MS)
    await expect(two.locator(".connector-info")).to_have_text("Контактор залип: требуется обслуживание")
    await expect(two.locator(".button-start")).to_be_disabled()
    await show(bus, idle_state(3, status=ConnectorStatus.FAULTED, error_code="PowerMeterFailure"))
    await expect(three.locator(".connector-info")).to_have_text("Неисправность счётчика", timeout=WAIT_MS)


async def test_emergency_stop_covers_the_station_until_it_is_released(
        kiosk: Kiosk, bus: Bus, browser_page: Page, tmp_path: Path) -> None:
    page = browser_page
    await station_in_service(bus)
    await open_hmi(page, kiosk.web)
    screen = page.locator("#station-screen")
    await expect(screen).to_be_hidden()

    await set_station(bus, status=ConnectorStatus.FAULTED, estop=True)
    for connector_id in (1, 2, 3, 4):
        await show(bus, idle_state(connector_id, status=ConnectorStatus.FAULTED, error_code="OtherError",
                                   info="estop"))
    await expect(screen).to_be_visible(timeout=WAIT_MS)
    await expect(screen).to_have_attribute("data-kind", "estop")
    await expect(screen.locator(".screen-title")).to_have_text("EMERGENCY STOP")
    await expect(card(page, 1).locator(".button-start")).to_be_disabled()
    await screenshots(page, screens_folder(tmp_path), "hmi-estop")
    await page.locator("#lang").click()  # the top bar stays usable
    await expect(screen.locator(".screen-title")).to_have_text("АВАРИЙНАЯ ОСТАНОВКА")  # noqa: RUF001

    await set_station(bus)
    await expect(screen).to_be_hidden(timeout=WAIT_MS)


async def test_a_station_fault_names_its_reason_on_the_station_screen(
        kiosk: Kiosk, bus: Bus, browser_page: Page) -> None:
    page = browser_page
    await station_in_service(bus)
    await open_hmi(page, kiosk.web)

    for connector_id in (1, 2, 3, 4):
        await show(bus, idle_state(connector_id, status=ConnectorStatus.FAULTED, error_code="OtherError",
                                   info="door_open"))
    await set_station(bus, status=ConnectorStatus.FAULTED)
    screen = page.locator("#station-screen")
    await expect(screen).to_have_attribute("data-kind", "faulted", timeout=WAIT_MS)
    await expect(screen.locator(".screen-title")).to_have_text("Station fault")
    await expect(screen.locator(".screen-text")).to_have_text("Cabinet door open")


async def test_a_blocked_station_and_a_blocked_connector_are_shown_as_out_of_service(
        kiosk: Kiosk, bus: Bus, browser_page: Page, tmp_path: Path) -> None:
    page = browser_page
    await station_in_service(bus)
    await open_hmi(page, kiosk.web)

    three = card(page, 3)
    await show(bus, idle_state(3, status=ConnectorStatus.UNAVAILABLE, info="unavailable", operative=False))
    await expect(three.locator(".connector-status")).to_have_text("Unavailable", timeout=WAIT_MS)
    await expect(three.locator(".connector-info")).to_have_text("Out of service")
    await expect(three.locator(".button-start")).to_be_disabled()
    await expect(card(page, 1).locator(".button-stop")).to_be_enabled()  # the others go on
    await expect(page.locator("#station-screen")).to_be_hidden()

    await set_station(bus, status=ConnectorStatus.UNAVAILABLE, operative=False)
    screen = page.locator("#station-screen")
    await expect(screen).to_have_attribute("data-kind", "blocked", timeout=WAIT_MS)
    await expect(screen.locator(".screen-title")).to_have_text("Out of service")
    await expect(screen).to_be_visible()
    await screenshots(page, screens_folder(tmp_path), "hmi-blocked")


async def test_csms_offline_is_a_banner_and_starting_still_works(
        kiosk: Kiosk, fake_smartw: FakeSmartw, bus: Bus, browser_page: Page) -> None:
    page = browser_page
    await station_in_service(bus)
    await open_hmi(page, kiosk.web)
    banner = page.locator("#banner-offline")
    await expect(banner).to_be_hidden()

    await set_csms(bus, connected=False)
    await expect(banner).to_be_visible(timeout=WAIT_MS)
    await expect(banner).to_contain_text("No connection to the operator's server")
    await expect(page.locator("#ocpp")).to_have_text("Server: offline")
    await expect(page.locator("#station-screen")).to_be_hidden()
    await card(page, 3).locator(".button-start").click()
    await async_wait_until(_async(lambda: fake_smartw.starts), what="the StartRequest at smartw")
    await assert_fits_on_every_screen(page)

    await set_csms(bus, connected=True)
    await expect(banner).to_be_hidden(timeout=WAIT_MS)


async def test_page_marks_data_stale_while_the_web_service_is_away_and_recovers(
        kiosk: Kiosk, bus: Bus, browser_page: Page) -> None:
    page = browser_page
    await kiosk.configure(bus, hmi_stop_needs_card=False)
    await station_in_service(bus)
    await open_hmi(page, kiosk.web)

    assert kiosk.web.stop() == 0
    await expect(page.locator("#banner-connection")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("body")).to_have_class(re.compile(r"\bstale\b"))
    one = card(page, 1)
    await expect(one.locator('[data-field="power"]')).to_have_text("50.0")  # last value kept
    await expect(one.locator(".button-stop")).to_be_disabled()

    kiosk.web.start()
    await expect(page.locator("#banner-connection")).to_be_hidden(timeout=RECONNECT_WAIT_MS)
    await expect(page.locator("body")).not_to_have_class(re.compile(r"\bstale\b"))
    await expect(one.locator(".button-stop")).to_be_enabled()


@pytest.mark.parametrize("count", [1, 2, 3, 4])
async def test_every_card_fits_the_screen_and_every_button_takes_a_touch(
        count: int, kiosk: Kiosk, fake_smartw: FakeSmartw, bus: Bus, browser_page: Page,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "station.toml"
    config.write_text(station_toml(count))
    monkeypatch.setenv("STATION_CONFIG", str(config))
    states = crowded_states()[:count]
    await set_station(bus)
    await set_csms(bus, connected=False)  # its banner takes room too
    for state in states:
        await bus.set(contract.CONNECTOR, state, connector_id=state.connector_id)
    page = browser_page
    # A web service of its own (its own station.toml) on the module's database: both publish
    # the same operator settings.
    with running_kiosk(kiosk.db, tmp_path, monkeypatch) as running:
        await running.configure(bus, hmi_stop_needs_card=False, qr_connector_link=CONNECTOR_LINK)
        await open_hmi(page, running.web)
        await expect(page.locator(".connector")).to_have_count(count)
        await assert_fits_on_every_screen(page)

        stoppable = [state.connector_id for state in states if state.status is not ConnectorStatus.FAULTED]
        for connector_id in stoppable:
            await card(page, connector_id).locator(".button-stop").click(timeout=WAIT_MS)
        await async_wait_until(_async(lambda: len(fake_smartw.stops) == len(stoppable)),
                               what="a StopRequest at smartw from every card with a session")
        assert sorted(stop.connector_id for stop in fake_smartw.stops) == stoppable

        await page.locator("#lang").click()  # Russian: the longer texts
        await show(bus, idle_state(1, status=ConnectorStatus.FINISHING, plugged=True, info="unplug_ev"))
        await expect(card(page, 1)).to_have_attribute("data-view", "summary", timeout=WAIT_MS)
        if count >= 2:
            await show(bus, idle_state(2, info=""))
            await expect(card(page, 2)).to_have_attribute("data-view", "qr", timeout=WAIT_MS)
        await bus.publish(contract.AUTH_RESULTS, AuthResult(connector_id=1, id_tag="DEADBEEF",
                                                            status=AuthorizationStatus.BLOCKED))
        await expect(page.locator("#notice")).to_have_text("Карта заблокирована", timeout=WAIT_MS)
        await assert_fits_on_every_screen(page)

        await set_station(bus, status=ConnectorStatus.FAULTED, estop=True)
        await expect(page.locator("#station-screen")).to_be_visible(timeout=WAIT_MS)
        await assert_fits_on_every_screen(page)
    await expect(page.locator("#banner-connection")).to_be_visible(timeout=WAIT_MS)
    await assert_fits_on_every_screen(page)  # both banners shown
