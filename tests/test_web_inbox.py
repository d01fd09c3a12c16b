"""The designated contacts' web inbox (/inbox): what a contact sees and can do in a browser.

Web-layer tests: a real RoutingStore on SQLite and `RecordingActions` (acknowledges in the
store, records replies) stand in for the broker's alert flow. The browser test drives
Debian's chromium against uvicorn on a loopback port; the others check the cookie, CSRF and
escaping rules through httpx. The end-to-end test through `s284 up` (the managing officer
receives the acknowledgement) reuses tests/browser.py.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
import pytest
import uvicorn

from broker.auth import Role
from routing import Topic
from tests.browser import browser_page, login
from tests.conftest import free_port
from tests.test_api_alerts import OFFENDER, Env, add_alert, make_env, routing_down

__all__ = ["browser_page"]  # a fixture, imported for pytest


@pytest.fixture
def env(tmp_path):
    e = make_env(tmp_path)
    yield e
    e.store.close()
    e.audit.close()


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextmanager
def serving(env: Env) -> Iterator[str]:
    """uvicorn serving the app on a free loopback port in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        env.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = _ThreadServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.browser
def test_a_contact_signs_in_sees_acknowledges_and_replies_in_a_real_browser(env, browser_page):
    """A contact signs in with their token, sees their alerts newest first (offender
    reference, topic, sender, deadline, overdue marker), acknowledges one (it leaves the
    inbox and is recorded as theirs), replies to the other (the reply reaches the alert
    flow), and signs out. Another contact sees none of it; no cookie means the login page."""
    from playwright.sync_api import expect

    page = browser_page
    older = add_alert(env.store, "police", "pol-nwm-017", age=timedelta(hours=2))
    newer = add_alert(
        env.store, "police", "pol-nwm-017", topic=Topic.FAMILY_VIOLENCE,
        offender="S284-000456", due_in=timedelta(minutes=-5),
    )  # fmt: skip
    with serving(env) as base:
        page.goto(f"{base}/inbox")
        expect(page).to_have_url(re.compile(r"/inbox/login"))

        login(page, base, env.token("pol-nwm-017"))
        cards = page.locator("article")
        expect(cards).to_have_count(2)
        expect(cards.nth(0)).to_contain_text("S284-000456")  # newest first
        expect(cards.nth(0)).to_contain_text("family violence")
        expect(cards.nth(0).locator(".overdue")).to_have_text("overdue")
        first = page.locator(f"#alert-{older.alert_id}")
        expect(first).to_contain_text(OFFENDER)
        expect(first).to_contain_text("risk")
        expect(first).to_contain_text("corrections")
        expect(first.locator(".overdue")).to_have_count(0)

        first.get_by_role("button", name="Acknowledge").click()
        expect(page.get_by_role("status")).to_contain_text("Alert acknowledged")
        expect(page.locator(f"#alert-{older.alert_id}")).to_have_count(0)
        assert env.store.alert(older.alert_id).acknowledged_by == "pol-nwm-017"

        second = page.locator(f"#alert-{newer.alert_id}")
        second.get_by_label("Reply to the managing officer").fill("Seen near the school.")
        second.get_by_role("button", name="Send reply").click()
        expect(page.get_by_role("status")).to_contain_text("Reply sent")
        assert env.actions.replies == [(newer.alert_id, "pol-nwm-017", "Seen near the school.")]

        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/inbox/login"))
        page.goto(f"{base}/inbox")
        expect(page).to_have_url(re.compile(r"/inbox/login"))

        login(page, base, env.token("pol-nwm-022"))
        expect(page.locator("#no-alerts")).to_be_visible()
        expect(page.locator("body")).not_to_contain_text("S284-000456")


# -- the rules behind the page, through httpx ------------------------------------------------


@pytest.fixture
async def client(env):
    transport = httpx.ASGITransport(app=env.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def _sign_in(client: httpx.AsyncClient, token: str) -> str:
    r = await client.post("/inbox/login", data={"token": token})
    assert (r.status_code, r.headers["location"]) == (303, "/inbox")
    page = (await client.get("/inbox")).text
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert match is not None
    return match.group(1)


async def test_the_session_cookie_is_httponly_strict_and_scoped_to_the_inbox(env, client):
    r = await client.post("/inbox/login", data={"token": env.token("pol-nwm-017")})
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith("s284_inbox=")
    for flag in ("httponly", "samesite=strict", "path=/inbox"):
        assert flag in cookie


@pytest.mark.parametrize(
    ("token", "code"),
    [("not-a-token", "auth.invalid_token"), (None, "auth.forbidden")],
)
async def test_a_bad_token_re_renders_the_form_with_the_error(env, client, token, code):
    """A garbled token or one for another role: the form again, with the reason, no cookie."""
    token = token or env.token("po-1", "police", Role.PRIVACY_OFFICER)
    r = await client.post("/inbox/login", data={"token": token})
    assert r.status_code in (401, 403)
    assert "set-cookie" not in r.headers
    assert code in r.text
    assert 'name="token"' in r.text
    assert token not in r.text


async def test_without_a_cookie_every_page_sends_you_to_the_login(env, client):
    alert = add_alert(env.store, "police", "pol-nwm-017")
    for method, path in (("GET", "/inbox"), ("POST", f"/inbox/alerts/{alert.alert_id}/ack")):
        r = await client.request(method, path)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/inbox/login")
    assert env.store.alert(alert.alert_id).acknowledged_by is None


async def test_a_first_visit_shows_a_plain_sign_in_page(env, client):
    """Someone who never signed in opens /inbox: the sign-in page, with no "your session has
    ended" message (that is only for a session cookie that came and was not good)."""
    r = await client.get("/inbox")
    assert (r.status_code, r.headers["location"]) == (303, "/inbox/login")
    page = await client.get(r.headers["location"])
    assert page.status_code == 200
    assert "Sign in to your alert inbox" in page.text
    assert "session has ended" not in page.text
    assert 'role="alert"' not in page.text


async def test_a_bad_or_ended_session_says_so_and_is_cleared(env, client):
    """A forged or stale session cookie: the sign-in page says the session ended or is not
    valid, and the cookie is deleted."""
    client.cookies.set("s284_inbox", "not.a.jwt", path="/inbox")
    r = await client.get("/inbox")
    assert (r.status_code, r.headers["location"]) == (303, "/inbox/login?flash=expired")
    assert "s284_inbox=" in r.headers["set-cookie"]
    page = await client.get(r.headers["location"])
    assert "Your session has ended or is not valid" in page.text


async def test_form_posts_need_the_sessions_csrf_token_and_this_origin(env, client):
    """A post without the CSRF token, with another session's, or from another site's page
    changes nothing and says the form expired."""
    alert = add_alert(env.store, "police", "pol-nwm-017")
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=env.app), base_url="http://test")
    async with other:
        foreign_csrf = await _sign_in(other, env.token("pol-nwm-022"))
    csrf = await _sign_in(client, env.token("pol-nwm-017"))
    ack = f"/inbox/alerts/{alert.alert_id}/ack"
    for data, headers in (
        ({}, {}),
        ({"csrf": foreign_csrf}, {}),
        ({"csrf": csrf}, {"Origin": "https://evil.example"}),
    ):
        r = await client.post(ack, data=data, headers=headers)
        assert r.status_code == 303
        assert "flash=stale_form" in r.headers["location"]
    assert env.store.alert(alert.alert_id).acknowledged_by is None

    r = await client.post(ack, data={"csrf": csrf}, headers={"Origin": "http://test"})
    assert "flash=acknowledged" in r.headers["location"]
    assert env.store.alert(alert.alert_id).acknowledged_by == "pol-nwm-017"


async def test_errors_come_back_as_a_message_on_the_inbox(env, client):
    """Acknowledging twice, someone else's alert, or an empty reply: a message naming the
    reason code, and nothing done."""
    mine = add_alert(env.store, "police", "pol-nwm-017")
    theirs = add_alert(env.store, "police", "pol-nwm-022")
    csrf = await _sign_in(client, env.token("pol-nwm-017"))
    await client.post(f"/inbox/alerts/{mine.alert_id}/ack", data={"csrf": csrf})
    for path, data, flash in (
        (f"/inbox/alerts/{mine.alert_id}/ack", {}, "conflict"),
        (f"/inbox/alerts/{theirs.alert_id}/ack", {}, "not_found"),
        (f"/inbox/alerts/{mine.alert_id}/reply", {"text": "  "}, "invalid"),
        (f"/inbox/alerts/{mine.alert_id}/reply", {"text": "x" * 2001}, "invalid"),
    ):
        r = await client.post(path, data={"csrf": csrf, **data})
        assert f"flash={flash}" in r.headers["location"], path
    page = (await client.get("/inbox?flash=conflict&code=routing.already_acknowledged")).text
    assert "may already be acknowledged" in page
    assert "routing.already_acknowledged" in page
    assert env.actions.replies == []
    assert env.store.alert(theirs.alert_id).acknowledged_by is None


async def test_an_alert_escalated_away_or_a_database_outage_is_a_message_too(env, client, tmp_path):
    """The alert moved to the deputy while the page was open: "not routed to you"; the
    routing database down: "try again" with routing.unavailable, on the inbox page too (a
    503 page, not a redirect to itself). No traceback anywhere."""
    alert = add_alert(env.store, "police", "pol-nwm-017")
    csrf = await _sign_in(client, env.token("pol-nwm-017"))
    env.actions.moved_away = True
    r = await client.post(f"/inbox/alerts/{alert.alert_id}/ack", data={"csrf": csrf})
    assert "flash=not_found&code=routing.unknown_alert" in r.headers["location"]
    routing_down(env.store, tmp_path)
    r = await client.post(f"/inbox/alerts/{alert.alert_id}/ack", data={"csrf": csrf})
    assert r.status_code == 303
    assert "flash=unavailable&code=routing.unavailable" in r.headers["location"]
    page = await client.get(r.headers["location"])  # the inbox itself cannot be read now
    assert page.status_code == 503
    assert "try again in a minute" in page.text
    assert "routing.unavailable" in page.text


async def test_everything_shown_is_escaped_and_unknown_flash_text_is_not_reflected(env, client):
    add_alert(env.store, "police", "pol-nwm-017", offender="<script>alert(1)</script>")
    await _sign_in(client, env.token("pol-nwm-017"))
    r = await client.get("/inbox?flash=<b>hi</b>&code=<i>x</i>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "<script>" not in r.text
    assert "<b>hi</b>" not in r.text
    assert "<i>x</i>" not in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert r.headers["cache-control"] == "no-store"


async def test_logout_clears_the_cookie(env, client):
    csrf = await _sign_in(client, env.token("pol-nwm-017"))
    r = await client.post("/inbox/logout", data={"csrf": csrf})
    assert r.headers["location"] == "/inbox/login?flash=signed_out"
    assert 's284_inbox=""' in r.headers["set-cookie"] or "max-age=0" in r.headers["set-cookie"]
    r = await client.get("/inbox")
    assert r.status_code == 303
