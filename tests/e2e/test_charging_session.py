"""One charging session end to end: simulator, every service, a real CSMS, a real browser."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from tests.e2e.conftest import CHARGE_POINT_ID
from tests.e2e.helpers import CARD, energy_values, session_row, sim, status_notification
from tests.support.hardware import read_connector_hardware
from tests.support.station import Station
from tests.support.waiting import async_wait_until
from workers.sim.csms import Csms

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(240)]


async def test_hmi_start_then_card_then_hmi_stop(csms: Csms, station: Station,
                                                 browser_page: Page) -> None:
    await status_notification(csms, 1, "Available")
    await sim(station, "plug", "1", "--soc", "20")
    await status_notification(csms, 1, "Preparing")
    await browser_page.goto(f"{station.web_url}/hmi/")
    connector = browser_page.locator('[data-connector="1"]')
    await connector.locator('[data-action="start"]').click(timeout=15_000)
    await connector.locator(".connector-prompt").wait_for(state="visible", timeout=10_000)
    await sim(station, "swipe", CARD)

    authorize = await csms.wait_for_call("Authorize", timeout_s=20)
    assert authorize.payload["idTag"] == CARD
    start = await csms.wait_for_call("StartTransaction", timeout_s=20)
    assert (start.payload["connectorId"], start.payload["idTag"]) == (1, CARD)
    await status_notification(csms, 1, "Charging")

    async def energy_rising() -> list[float] | None:  # a DC start: precharge, then modules join
        energies = energy_values(csms.calls("MeterValues"))
        return energies if len(energies) >= 2 and energies[-1] > energies[0] else None
    energies = await async_wait_until(energy_rising, timeout_s=30, what="MeterValues with rising energy")
    assert energies == sorted(energies), energies

    await connector.locator(".connector-prompt").wait_for(state="hidden", timeout=10_000)
    await connector.locator('[data-action="stop"]').click(timeout=15_000)
    await connector.locator(".connector-prompt").wait_for(state="visible", timeout=10_000)
    await sim(station, "swipe", CARD)  # Stop needs the card that started the session (the default)

    stop = await csms.wait_for_call("StopTransaction", timeout_s=20)
    assert stop.payload["transactionId"] == start.response["transactionId"]
    assert stop.payload["reason"] == "Local"
    hardware = await read_connector_hardware(station.config_path, 1)
    assert not hardware.contactor_closed
    assert stop.payload["meterStop"] == round(hardware.meter_energy_wh)
    assert stop.payload["meterStop"] > start.payload["meterStart"]
    row = session_row(station, start.payload["meterStart"])
    assert row["energy_wh"] == pytest.approx(stop.payload["meterStop"] - start.payload["meterStart"], abs=1)
    assert row["stop_reason"] == "Local"
    await status_notification(csms, 1, "Finishing")


async def test_remote_start_and_remote_stop_from_the_csms(csms: Csms, station: Station) -> None:
    """OCTT TC_010 (remote start, cable plugged in first) and TC_012 (remote stop, reason Remote)."""
    await sim(station, "plug", "2", "--soc", "50")
    await status_notification(csms, 2, "Preparing")
    assert await csms.remote_start(CHARGE_POINT_ID, "REMOTE-TAG", connector_id=2) == "Accepted"
    start = await csms.wait_for_call("StartTransaction", timeout_s=20)
    assert (start.payload["connectorId"], start.payload["idTag"]) == (2, "REMOTE-TAG")
    await status_notification(csms, 2, "Charging")

    async def energy_flowed() -> bool:
        return bool(energy_values(csms.calls("MeterValues"))) and \
            max(energy_values(csms.calls("MeterValues"))) > start.payload["meterStart"]
    await async_wait_until(energy_flowed, timeout_s=20, what="MeterValues with energy above meterStart")

    assert await csms.remote_stop(CHARGE_POINT_ID, start.response["transactionId"]) == "Accepted"
    stop = await csms.wait_for_call("StopTransaction", timeout_s=20)
    assert stop.payload["reason"] == "Remote"
    hardware = await read_connector_hardware(station.config_path, 2)
    assert stop.payload["meterStop"] == round(hardware.meter_energy_wh) > start.payload["meterStart"]
    assert session_row(station, start.payload["meterStart"])["stop_reason"] == "Remote"
