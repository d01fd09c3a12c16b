"""The oversight console at /console: sign-in, the risk-reduction review queue with the review
action, the accounting of disclosures per offender, CSV exports; the same visibility as the
JSON API (the SQL queries decide it), every request in the log's access log, and pages that
fit a phone. HTTP tests use httpx's ASGI transport; the browser test drives Debian's
chromium at 1280 and 390 px and keeps its screenshots in the test's tmp_path.
All records are synthetic (tests/test_audit_api.py's generator)."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from audit import (
    AccessFilters,
    AuditStore,
    Period,
    Viewer,
    access_log,
    accounting,
    review_queue,
    statistics,
)
from broker.auth import AuthConfig, LocalIssuer, Role
from broker.http.app import ApiDeps, create_app
from tests.browser import browser_page  # noqa: F401 - the fixture is used by name
from tests.test_audit_api import _synthetic
from tests.test_web_inbox import serving

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@dataclass
class Env:
    store: AuditStore
    issuer: LocalIssuer
    auth: AuthConfig
    app: FastAPI

    def token(self, role: str, agency: str | None, subject: str = "P. Officer") -> str:
        return self.issuer.issue(self.auth, subject, Role(role), agency, 600)


@pytest.fixture
def env(tmp_path):
    store = AuditStore.open(f"sqlite:///{tmp_path / 'audit.db'}")
    store.append(_synthetic())
    issuer = LocalIssuer.for_home(tmp_path / "home")
    issuer.ensure()
    auth = AuthConfig("s284-local", "s284-audit", str(issuer.public_path))
    yield Env(store, issuer, auth, create_app({}, ApiDeps(audit=store, auth=auth)))
    store.close()


@contextlib.asynccontextmanager
async def _signed_in(env: Env, token: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=env.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
        r = await client.post("/console/login", data={"token": token})
        assert r.status_code == 303, r.text
        yield client


def _queue(env: Env, role: str, agency: str | None) -> list[dict]:
    return review_queue(env.store, Viewer(role, agency, "P. Officer"), None, 200).rows


async def test_a_first_visit_is_a_plain_sign_in_page(env):
    transport = httpx.ASGITransport(app=env.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
        r = await client.get("/console")
        assert (r.status_code, r.headers["location"]) == (303, "/console/login")
        page = await client.get("/console/login")
    assert "Sign in to the oversight console" in page.text
    assert "session has ended" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_a_contacts_token_does_not_open_the_console(env):
    transport = httpx.ASGITransport(app=env.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
        r = await client.post("/console/login", data={"token": env.token("contact", "police")})
    assert r.status_code == 403
    assert "Not signed in" in r.text
    assert "auth.forbidden" in r.text
    assert "s284_console" not in r.headers.get("set-cookie", "")


async def test_the_queue_shows_what_the_officer_may_see_and_a_review_clears_it(env):
    """Health's privacy officer sees exactly the queue the API's query gives health, records
    a review through the form, and the disclosure leaves the queue with a `reviewed` record
    in the log naming the outcome."""
    expected = _queue(env, "privacy_officer", "health")
    assert expected, "the synthetic log has risk_reduction disclosures for health"
    async with _signed_in(env, env.token("privacy_officer", "health")) as client:
        page = await client.get("/console")
        assert page.status_code == 200
        shown = re.findall(r'<tr id="r-([^"]+)">', page.text)
        assert shown == [r["record_id"] for r in expected]
        csrf = CSRF.search(page.text).group(1)
        involved = [r for r in expected if "health" in (r["sender_agency"], r["recipient_agency"])]
        target = involved[0]["record_id"]
        done = await client.post(
            f"/console/reviews/{target}",
            data={"csrf": csrf, "outcome": "appropriate", "note": "grounds were reasonable"},
        )
        assert (done.status_code, done.headers["location"]) == (303, "/console?flash=reviewed")
        after = await client.get("/console?flash=reviewed")
    assert "Review recorded" in after.text
    assert target not in [r["record_id"] for r in _queue(env, "privacy_officer", "health")]
    [review] = [r for r in env.store.records() if r["refers_to"] == target]
    assert (review["event"], review["reason_code"]) == ("reviewed", "review.appropriate")


async def test_a_post_without_the_forms_csrf_token_changes_nothing(env):
    before = _queue(env, "privacy_officer", "health")
    async with _signed_in(env, env.token("privacy_officer", "health")) as client:
        r = await client.post(
            f"/console/reviews/{before[0]['record_id']}", data={"outcome": "appropriate"}
        )
    assert r.status_code == 303
    assert "flash=stale_form" in r.headers["location"]
    assert _queue(env, "privacy_officer", "health") == before


async def test_signing_out_revokes_the_session_on_the_server(env):
    """After Sign out, a copy of the session cookie (another tab, a stolen copy) opens
    nothing: the console sends it to the sign-in page, as the inbox does."""
    token = env.token("privacy_officer", "health")
    async with _signed_in(env, token) as client:
        page = await client.get("/console")
        [csrf] = CSRF.findall(page.text)[:1]
        out = await client.post("/console/logout", data={"csrf": csrf})
        assert out.status_code == 303
        assert out.headers["location"] == "/console/login?flash=signed_out"
    transport = httpx.ASGITransport(app=env.app)
    copied = {"s284_console": token}
    async with httpx.AsyncClient(transport=transport, base_url="http://c", cookies=copied) as c:
        again = await c.get("/console")
    assert again.status_code == 303
    assert again.headers["location"].startswith("/console/login")


async def test_an_auditor_sees_the_queue_but_may_not_review(env):
    before = _queue(env, "auditor", None)
    async with _signed_in(env, env.token("auditor", None, "A. Auditor")) as client:
        page = await client.get("/console")
        assert "privacy officers review" in page.text
        assert "Record review" not in page.text
        csrf = CSRF.search(page.text).group(1)
        r = await client.post(
            f"/console/reviews/{before[0]['record_id']}",
            data={"csrf": csrf, "outcome": "appropriate"},
        )
    assert "flash=forbidden" in r.headers["location"]
    assert _queue(env, "auditor", None) == before


async def test_accounting_and_its_csv_match_the_apis_query(env):
    officer = Viewer("privacy_officer", "health", "P. Officer")
    expected = accounting(env.store, officer, "S284-000001", None, 200).rows
    assert expected
    async with _signed_in(env, env.token("privacy_officer", "health")) as client:
        page = await client.get("/console/accounting", params={"offender": "S284-000001"})
        exported = await client.get("/console/accounting.csv", params={"offender": "S284-000001"})
        bad = await client.get("/console/accounting", params={"offender": "<script>"})
    assert f"{len(expected)} disclosure(s)" in page.text
    assert page.text.count('<tr class="disclosure">') == len(expected)
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["record_id"] for r in rows] == [r["record_id"] for r in expected]
    assert bad.status_code == 400
    assert "<script>" not in bad.text
    assert "request.invalid" in bad.text


async def test_every_console_request_is_in_the_access_log(env):
    async with _signed_in(env, env.token("privacy_officer", "health", "H. Officer")) as client:
        await client.get("/console")
        await client.get("/console/reviews.csv")
    seen = [
        (e["path"], e["status"], e["subject"])
        for e in access_log(env.store, AccessFilters(), None, 100).rows
        if e["path"].startswith("/console")
    ]
    assert ("/console", 200, "H. Officer") in seen
    assert ("/console/reviews.csv", 200, "H. Officer") in seen
    assert ("/console/login", 303, "H. Officer") in seen


@pytest.mark.browser
@pytest.mark.slow
def test_a_privacy_officer_reviews_and_reads_the_accounting_in_a_real_browser(
    env,
    browser_page,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
):
    """At 1280 and 390 px: sign in, review one disclosure, read an offender's accounting;
    nothing overflows the phone's width. Screenshots are kept in tmp_path."""
    from playwright.sync_api import expect

    page = browser_page
    target = _queue(env, "privacy_officer", "health")[0]["record_id"]
    with serving(env) as base:  # type: ignore[arg-type]
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{base}/console")
        page.get_by_label("Access token").fill(env.token("privacy_officer", "health"))
        page.get_by_role("button", name="Sign in").click()
        heading = page.get_by_role("heading", name="Disclosures awaiting privacy review")
        expect(heading).to_be_visible()
        page.screenshot(path=str(tmp_path / "console-reviews-1280.png"), full_page=True)
        row = page.locator(f'[id="r-{target}"]')
        row.get_by_label("Outcome").select_option("needs_follow_up")
        row.get_by_role("button", name="Record review").click()
        expect(page.get_by_role("status")).to_contain_text("Review recorded")
        expect(page.locator(f'[id="r-{target}"]')).to_have_count(0)

        page.set_viewport_size({"width": 390, "height": 844})
        page.get_by_role("link", name="Accounting").click()
        page.get_by_label("Offender reference").fill("S284-000001")
        page.get_by_role("button", name="Show").click()
        expect(page.locator("#disclosures")).to_be_visible()
        page.screenshot(path=str(tmp_path / "console-accounting-390.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not overflow, "the accounting page is wider than a phone"
    assert (tmp_path / "console-accounting-390.png").stat().st_size > 0


PERIOD = {"from": "2026-03-01", "to": "2026-04-30"}


async def test_the_authority_sees_the_statistics_and_nothing_else(env):
    """`psa` signs in to the statistics: its figures are the oversight query's; the review
    queue sends it there; records (accounting, exports) are refused."""
    expected = statistics(env.store, Period.parse(PERIOD["from"], PERIOD["to"]))
    assert expected["disclosures"]["total"] > 0
    transport = httpx.ASGITransport(app=env.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
        signed = await client.post("/console/login", data={"token": env.token("psa", None)})
        assert signed.headers["location"] == "/console/statistics"
        assert (await client.get("/console")).headers["location"] == "/console/statistics"
        page = await client.get("/console/statistics", params=PERIOD)
        exported = await client.get("/console/statistics.csv", params=PERIOD)
        records = await client.get("/console/accounting", params={"offender": "S284-000001"})
    assert page.status_code == 200
    total = expected["disclosures"]["total"]
    review = expected["disclosures"]["review_required"]
    assert f"<dd>{total} ({review} marked for privacy review)</dd>" in page.text
    chart = page.text.split('id="chart-ground"', 1)[1].split("</svg>", 1)[0]
    grounds = expected["disclosures"]["by_ground"]
    assert chart.count("<rect") == len(grounds)
    assert all(f"<title>{ground}</title>" in chart for ground in grounds)
    assert "Review queue" not in page.text  # no link to what it may not see
    rows = dict(csv.reader(io.StringIO(exported.text)))
    assert rows["disclosures.total"] == str(total)
    assert rows["refusals.total"] == str(expected["refusals"]["total"])
    assert records.status_code == 403
    assert "auth.forbidden" in records.text


async def test_a_period_that_ends_before_it_starts_is_a_clear_400(env):
    async with _signed_in(env, env.token("auditor", None, "A. Auditor")) as client:
        r = await client.get(
            "/console/statistics", params={"from": "2026-04-30", "to": "2026-03-01"}
        )
    assert r.status_code == 400
    assert "oversight.bad_period" in r.text
    assert "starts (2026-04-30) after it ends (2026-03-01)" in r.text


@pytest.mark.browser
@pytest.mark.slow
def test_the_statistics_page_charts_fit_a_phone(env, browser_page, tmp_path: Path):  # noqa: F811
    from playwright.sync_api import expect

    page = browser_page
    with serving(env) as base:  # type: ignore[arg-type]
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{base}/console/login")
        page.get_by_label("Access token").fill(env.token("psa", None, "PSA analyst"))
        page.get_by_role("button", name="Sign in").click()
        page.get_by_label("From").fill(PERIOD["from"])
        page.get_by_label("To (inclusive)").fill(PERIOD["to"])
        page.get_by_role("button", name="Show").click()
        expect(page.locator("#chart-ground rect").first).to_be_visible()
        page.screenshot(path=str(tmp_path / "console-statistics-390.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not overflow, "the statistics page is wider than a phone"
