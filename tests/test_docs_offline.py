"""The API documentation (/docs, /redoc) on a machine without internet: everything the pages
load comes from the broker itself, so a newcomer offline sees the operations, not a blank
page. The browser test blocks every request to a host other than 127.0.0.1."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser import browser_page  # noqa: F401 - the fixture is used by name
from tests.test_api_alerts import make_env
from tests.test_web_inbox import serving

PAGES = ("/docs", "/redoc")
OUTSIDE = re.compile(r"\b(?:https?:)?//[\w.-]+", re.IGNORECASE)
LOADED = re.compile(r"""(?:src|href)="([^"]+)\"""")


@pytest.fixture
def env(tmp_path):
    e = make_env(tmp_path)
    yield e
    e.store.close()
    e.audit.close()


@pytest.fixture
async def client(env):
    transport = httpx.ASGITransport(app=env.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.mark.parametrize("path", PAGES)
async def test_the_docs_pages_reference_nothing_outside_the_broker(client, path):
    """The page's HTML names no http(s) or protocol-relative URL; every script, stylesheet
    and icon it loads is a path on the broker that answers 200 with content."""
    r = await client.get(path)
    assert r.status_code == 200
    assert OUTSIDE.findall(r.text) == []
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    loaded = LOADED.findall(r.text)
    assert len(loaded) >= 2, loaded  # the icon and the script at least
    for url in loaded:
        assert url.startswith("/docs/assets/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url


async def test_fastapis_cdn_pages_are_not_mounted_as_well(client):
    """Only one /docs and one /redoc route exist, and the schema does not list them."""
    paths = [getattr(route, "path", "") for route in client._transport.app.routes]
    assert paths.count("/docs") == 1
    assert paths.count("/redoc") == 1
    schema = (await client.get("/openapi.json")).json()
    assert "/docs" not in schema["paths"]


@pytest.mark.browser
@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/docs", "#operations-audit-get_records_api_v1_audit_records_get"),
        ("/redoc", "[data-section-id='tag/audit']"),
    ],
)
def test_the_docs_render_their_operations_with_the_internet_blocked(
    env,
    browser_page,  # noqa: F811 - the fixture imported above
    path,
    operation,
):
    """In Chromium, with every request to another host aborted, /docs shows Swagger UI's
    operation list (the audit search among them) and /redoc its audit section; the page
    never even asked for an outside URL."""
    from playwright.sync_api import Route, expect

    asked_outside: list[str] = []

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            asked_outside.append(route.request.url)
            route.abort()

    page = browser_page
    page.route("**/*", only_loopback)
    with serving(env) as base:
        page.goto(f"{base}{path}")
        expect(page.locator(operation).first).to_be_visible()
        expect(page.locator("body")).to_contain_text("Search the disclosure log")
    assert asked_outside == []
