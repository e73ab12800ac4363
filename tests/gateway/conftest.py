"""The browser's fixtures (the gateway's `setup` comes from the `support.gateway` plugin): Debian's headless Chromium, started once per
session, driven by playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, Page
from support.browser import Chromium, connect, log_page, require_chromium


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    """The session's Chromium process; skipped when /usr/bin/chromium is missing (failed under CI=true)."""
    require_chromium()
    with Chromium.start() as process:
        yield process


@pytest.fixture
async def browser(chromium: Chromium) -> AsyncIterator[Browser]:
    """A playwright ``Browser`` connected to the session's Chromium on this test's event loop."""
    async with connect(chromium) as connected:
        yield connected


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a fresh browser context (its own cookies and storage), closed after the test."""
    context = await browser.new_context()
    page = await context.new_page()
    log_page(page)
    yield page
    await context.close()
