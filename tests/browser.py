"""A real headless browser for web tests: Debian's chromium driven by Playwright.

Never runs `playwright install`: it drives /usr/bin/chromium (S284_TEST_CHROMIUM overrides;
scripts/test installs it where it can). Without it a test skips with the reason, except
under CI, where it fails.

    from tests.browser import browser_page, login   # fixture + helper (sync tests)
    from tests.browser import browser_page_async, login_async   # for async tests

`login(page, base_url, token)` signs a designated contact in through /inbox/login and
returns once their inbox is shown.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Page as AsyncPage
    from playwright.sync_api import Page

CHROMIUM = Path(os.environ.get("S284_TEST_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TIMEOUT_MS = 15_000


def require_chromium() -> None:
    """Skip (fail under CI) when Debian's chromium or the playwright package is missing."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            missing = "the playwright package is missing (pip install -e '.[test]')"
    if missing and os.environ.get("CI"):
        pytest.fail(f"browser test cannot run under CI: {missing}")
    if missing:
        pytest.skip(f"browser test skipped: {missing}")


@pytest.fixture
def browser_page() -> Iterator[Page]:
    """A fresh page in a fresh browser context (no cookies), for sync tests."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


@pytest.fixture
async def browser_page_async() -> AsyncIterator[AsyncPage]:
    """The same for async tests (a running event loop forbids Playwright's sync API)."""
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = await browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield await context.new_page()
        finally:
            await context.close()
            await browser.close()


def login(page: Page, base_url: str, token: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/inbox/login")
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Open alerts")).to_be_visible()


async def login_async(page: AsyncPage, base_url: str, token: str) -> None:
    from playwright.async_api import expect

    await page.goto(f"{base_url}/inbox/login")
    await page.get_by_label("Access token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Open alerts")).to_be_visible()
