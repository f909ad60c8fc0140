"""A headless Chromium page for browser tests (Playwright's async API).

It drives the system's Chromium (Debian's /usr/bin/chromium, or CHROMIUM_PATH), never a
browser Playwright downloads, with a new empty profile per test. `--no-sandbox` lets it run
as root (CI runs as root). Registered for every test in tests/conftest.py (pytest_plugins).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from workers.jobs.hmi_screenshot import CHROMIUM_ARGS

DEFAULT_CHROMIUM = "/usr/bin/chromium"
DEFAULT_VIEWPORT = {"width": 1280, "height": 800}  # the reference station's touch screen


def chromium_path() -> str:
    """The Chromium to drive. Missing = a failed test, not a skip: a CI run without a browser
    must not look green."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or DEFAULT_CHROMIUM
    if not Path(path).exists():
        pytest.fail(f"no Chromium at {path} (set CHROMIUM_PATH or install Debian's chromium)")
    return path


@pytest.fixture
async def browser_page() -> AsyncIterator[Page]:
    """A page in a fresh headless Chromium profile, closed after the test."""
    executable = chromium_path()
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=list(CHROMIUM_ARGS),
                viewport=DEFAULT_VIEWPORT,
            )
            try:
                page = context.pages[0] if context.pages else await context.new_page()
                yield page
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
