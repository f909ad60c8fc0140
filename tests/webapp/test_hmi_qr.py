"""The kiosk's QR codes: drawn on the server from the operator's links only, the connector deep
link filled in with the charge point id ocpp16 uses, and decodable on the real screen (Chromium
renders them, zxing-cpp reads the screenshot back)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import Locator, Page, expect

from bus import Bus, contract
from bus.messages import HmiSettings, OcppLink, QrLink
from tests.support.waiting import async_wait_until
from tests.webapp.test_hmi_browser import (
    CONNECTOR_LINK,
    WAIT_MS,
    Kiosk,
    card,
    open_hmi,
    running_kiosk,
    screens_folder,
    screenshots,
    station_in_service,
)
from webapp.station import qr
from webapp.station.bus_state import read_kiosk, station_config
from webapp.station.hmi_messages import KioskView

FEEDBACK = "https://feedback.example/station?id=42"
ANDROID = "https://play.example/store/apps/details?id=example.charge"
IOS = "https://apps.example/app/charge/id123456"


# ---- drawing and filling in ---------------------------------------------------------------


def test_the_deep_link_gets_its_fields_and_nothing_else_of_the_template_is_evaluated() -> None:
    template = "https://app.example/{charge_point_id}/{connector_id}?c={connector_id}&x={connector_id.real}{"

    link = qr.connector_link(template, 3, "CP 7/β")

    assert link == "https://app.example/CP%207%2F%CE%B2/3?c=3&x={connector_id.real}{"


def test_a_code_is_an_svg_image_on_a_white_square_in_a_data_uri() -> None:
    uri = qr.svg_data_uri(FEEDBACK)

    prefix = "data:image/svg+xml;base64,"
    assert uri.startswith(prefix)
    svg = base64.b64decode(uri.removeprefix(prefix)).decode()
    assert svg.startswith("<svg") and 'fill="white"' in svg
    assert "<script" not in svg and FEEDBACK not in svg  # pictures only: nothing to run, no text


def test_a_link_too_long_for_a_qr_code_is_left_out_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    huge = "https://app.example/{connector_id}/" + "{charge_point_id}" * 27  # 494 characters: valid
    settings = HmiSettings(qr_links=(QrLink(key="feedback", url=FEEDBACK),), connector_link=huge)

    with caplog.at_level(logging.ERROR):  # an id of 48 non-ASCII letters: 288 characters quoted, x27
        kiosks = [KioskView.from_settings(settings, [1, 2], "\u0416" * 48) for _ in range(3)]  # 3 polls

    assert [code.url for code in kiosks[0].qr_codes] == [FEEDBACK]
    assert kiosks[0].connector_codes == ()
    assert kiosks[0] == kiosks[2]
    failures = [record.getMessage() for record in caplog.records]
    assert len(failures) == 2, failures  # one per connector's link, not one per poll
    assert all("does not fit in a QR code" in failure for failure in failures)


async def test_the_deep_link_uses_the_id_ocpp16_connects_as(bus: Bus) -> None:
    await bus.set(contract.HMI_SETTINGS, HmiSettings(connector_link=CONNECTOR_LINK))
    config = station_config()

    before = await read_kiosk(bus, config)  # ocpp16 has not said: OCPP_CHARGE_POINT_ID
    await bus.set(contract.OCPP_LINK, OcppLink(connected=True, csms_url="ws://csms", charge_point_id="CP-7"))
    after = await read_kiosk(bus, config)

    assert [entry.code.url for entry in before.connector_codes][:2] == [
        "https://app.example/start/SIM-0001/1", "https://app.example/start/SIM-0001/2"]
    assert [entry.code.url for entry in after.connector_codes][:2] == [
        "https://app.example/start/CP-7/1", "https://app.example/start/CP-7/2"]


async def test_nothing_is_drawn_that_the_operator_did_not_configure(bus: Bus) -> None:
    await bus.set(contract.HMI_SETTINGS, HmiSettings(language="ru"))

    kiosk = await read_kiosk(bus, station_config())

    assert (kiosk.qr_codes, kiosk.connector_codes) == ((), ())


# ---- on the screen ----------------------------------------------------------------------------


@pytest.fixture
def kiosk(redis_client, service_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kiosk]:
    with running_kiosk(service_db, tmp_path, monkeypatch) as running:
        yield running


async def decoded(image: Locator, folder: Path, name: str) -> list[str]:
    """What a phone would read: the texts zxing-cpp finds in a screenshot of `image`."""
    path = folder / f"{name}.png"
    await image.screenshot(path=path)
    with Image.open(path) as picture:
        return [barcode.text for barcode in zxingcpp.read_barcodes(picture)]


async def test_every_configured_code_is_on_screen_decodable_and_follows_changes_without_reload(
        kiosk: Kiosk, bus: Bus, browser_page: Page, tmp_path: Path) -> None:
    page = browser_page
    await kiosk.configure(bus, qr_feedback_url=FEEDBACK, qr_app_android_url=ANDROID, qr_app_ios_url=IOS,
                          qr_connector_link=CONNECTOR_LINK)
    await station_in_service(bus)  # connector 3 free: it shows its deep link
    await open_hmi(page, kiosk.web)
    three = card(page, 3)
    await expect(three).to_have_attribute("data-view", "qr", timeout=WAIT_MS)
    assert await decoded(three.locator(".qr-image"), tmp_path, "connector3") == [
        "https://app.example/start/SIM-0001/3"]
    await expect(card(page, 1)).to_have_attribute("data-view", "metrics")  # charging: its values

    await page.locator("#qr-open").click()
    panel = page.locator("#qr-panel")
    await expect(panel).to_be_visible()
    figures = panel.locator(".qr")
    await expect(figures.locator(".qr-caption")).to_have_text(["Leave feedback", "App for Android",
                                                                "App for iPhone"])
    texts = [await decoded(figures.nth(index).locator(".qr-image"), tmp_path, f"panel{index}")
             for index in range(3)]
    assert texts == [[FEEDBACK], [ANDROID], [IOS]]
    await screenshots(page, screens_folder(tmp_path), "hmi-qr")

    changed = "https://feedback.example/new"
    await kiosk.configure(bus, qr_feedback_url=changed, qr_app_ios_url="")
    await expect(figures).to_have_count(2, timeout=WAIT_MS)
    assert await decoded(figures.first.locator(".qr-image"), tmp_path, "changed") == [changed]
    await bus.set(contract.OCPP_LINK, OcppLink(connected=True, csms_url="ws://csms", charge_point_id="CP-7"))
    await page.locator("#qr-close").click()
    await expect(panel).to_be_hidden()

    async def deep_link_with_the_new_id() -> bool:
        texts = await decoded(three.locator(".qr-image"), tmp_path, "connector3-new")
        return texts == ["https://app.example/start/CP-7/3"]

    await async_wait_until(deep_link_with_the_new_id, what="connector 3's code with the new charge point id")

    await kiosk.configure(bus, qr_feedback_url="", qr_app_android_url="", qr_connector_link="")
    await expect(page.locator("#qr-open")).to_be_hidden(timeout=WAIT_MS)
    await expect(three).to_have_attribute("data-view", "metrics")
