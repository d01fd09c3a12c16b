"""The MAP chair in the console: signs in to the CSP register (current plans with their
next review due, reviews overdue, offenders whose order needs a plan and who have none),
exports each table as CSV, reads the statistics with the register's figures, and is refused
every record. The Authority does not see the register. HTTP through httpx's ASGI transport;
the browser test drives Debian's chromium at 1280 and 390 px, screenshots in tmp_path.
All people, plans and offenders are synthetic."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from audit import AuditStore
from broker.auth import AuthConfig, LocalIssuer, Role
from broker.http.app import ApiDeps, create_app
from routing import RoutingStore, add_months
from tests.browser import browser_page  # noqa: F401 - the fixture is used by name
from tests.test_audit_api import _synthetic
from tests.test_web_inbox import serving

LONG_AGO = date(2020, 1, 10)  # endorsed then: its review has been overdue since July 2020


@dataclass
class Env:
    store: AuditStore
    routing: RoutingStore
    issuer: LocalIssuer
    auth: AuthConfig
    app: FastAPI

    def token(self, role: str, agency: str | None = None, subject: str = "M. Chair") -> str:
        return self.issuer.issue(self.auth, subject, Role(role), agency, 600)


def _register(routing: RoutingStore) -> None:
    now = datetime.now(UTC)
    for ref, officer in (
        ("S284-000201", "cm-0042"),
        ("S284-000202", "cm-0042"),
        ("S284-000203", "=HYPERLINK(1)"),  # a hostile id must stay text in a spreadsheet
    ):
        routing.set_offender(ref, officer, "corrections", "barwon", "supervision_order", now)
    routing.record_csp_event("S284-000201", "CSP-201", "endorsed", LONG_AGO)
    routing.record_csp_event("S284-000202", "CSP-202", "endorsed", now.date())
    routing.record_csp_event("S284-000203", "CSP-203", "created", now.date())


@pytest.fixture
def env(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store, routing = AuditStore.open(url), RoutingStore.open(url)
    store.append(_synthetic())
    _register(routing)
    issuer = LocalIssuer.for_home(tmp_path / "home")
    issuer.ensure()
    auth = AuthConfig("s284-local", "s284-audit", str(issuer.public_path))
    app = create_app({}, ApiDeps(audit=store, auth=auth, routing=routing))
    yield Env(store, routing, issuer, auth, app)
    routing.close()
    store.close()


@contextlib.asynccontextmanager
async def _client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=env.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
        yield client


def _rows(html: str, table: str) -> list[list[str]]:
    body = html.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0]
    body = body.split("<tbody>", 1)[1]
    return [
        [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", body)
    ]


async def test_the_map_chair_lands_on_the_register_and_sees_each_table(env):
    """Overdue: CSP-201 (due six months after 10 Jan 2020), with its days overdue; current
    plans: both endorsed plans with their next review; without a plan: S284-000203, whose
    plan CSP-203 awaits endorsement."""
    today = datetime.now(UTC).date()
    async with _client(env) as client:
        signed = await client.post("/console/login", data={"token": env.token("map_chair")})
        assert signed.headers["location"] == "/console/csp"
        assert (await client.get("/console")).headers["location"] == "/console/csp"
        page = await client.get("/console/csp")
    assert page.status_code == 200
    due = add_months(LONG_AGO, 6)
    [overdue] = _rows(page.text, "overdue")
    assert overdue[:4] == ["S284-000201", "CSP-201", LONG_AGO.isoformat(), due.isoformat()]
    assert int(overdue[4]) >= (today - due).days - 1  # Melbourne's day may be a day ahead
    plans = _rows(page.text, "plans")
    assert [p[1] for p in plans] == ["CSP-201", "CSP-202"]
    assert plans[0][5] == due.isoformat()
    [missing] = _rows(page.text, "missing")
    assert missing == ["S284-000203", "supervision order", "=HYPERLINK(1)", "CSP-203"]
    assert "Review queue" not in page.text
    assert "Accounting" not in page.text


async def test_each_register_table_exports_as_csv(env):
    async with _client(env) as client:
        await client.post("/console/login", data={"token": env.token("map_chair")})
        got = {
            n: await client.get(f"/console/csp/{n}.csv") for n in ("plans", "overdue", "missing")
        }
    for response in got.values():
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
    plans = list(csv.DictReader(io.StringIO(got["plans"].text)))
    assert [(p["csp_id"], p["status"]) for p in plans] == [
        ("CSP-201", "endorsed"),
        ("CSP-202", "endorsed"),
    ]
    [overdue] = list(csv.DictReader(io.StringIO(got["overdue"].text)))
    assert overdue["csp_id"] == "CSP-201"
    [missing] = list(csv.DictReader(io.StringIO(got["missing"].text)))
    assert missing["managing_officer"] == "'=HYPERLINK(1)"  # not a formula
    assert missing["in_preparation"] == "CSP-203"


async def test_the_map_chair_reads_statistics_but_never_a_record(env):
    """The statistics page shows the register's figures; the review queue's export, the
    accounting and the audit API refuse the chair (403)."""
    async with _client(env) as client:
        await client.post("/console/login", data={"token": env.token("map_chair")})
        stats = await client.get(
            "/console/statistics", params={"from": "2020-01-01", "to": "2020-12-31"}
        )
        refused = [
            await client.get("/console/accounting", params={"offender": "S284-000001"}),
            await client.get("/console/reviews.csv"),
        ]
    assert stats.status_code == 200
    assert 'id="csp-plans">0 developed, 1 agreed (endorsed)' in stats.text
    assert 'id="csp-reviews">1: 0 on time, 0 late, 1 overdue, 0 not yet due' in stats.text
    assert 'id="t-breach-actions"' in stats.text
    assert 'id="t-topic"' in stats.text  # alerts by topic (and by area, charted)
    assert "CSP register" in stats.text
    for response in refused:
        assert response.status_code == 403
        assert "auth.forbidden" in response.text
    bearer = {"Authorization": f"Bearer {env.token('map_chair')}"}
    async with _client(env) as client:
        api = await client.get("/api/v1/audit/records", headers=bearer)
    assert api.status_code == 403


async def test_the_authority_does_not_see_the_register(env):
    async with _client(env) as client:
        await client.post("/console/login", data={"token": env.token("psa", None, "PSA")})
        stats = await client.get("/console/statistics")
        register = await client.get("/console/csp")
        export = await client.get("/console/csp/missing.csv")
    assert "CSP register" not in stats.text
    assert register.status_code == 403
    assert export.status_code == 403
    assert "S284-000203" not in register.text + export.text


@pytest.mark.browser
@pytest.mark.slow
def test_the_map_chair_reads_the_register_in_a_real_browser(
    env,
    browser_page,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
):
    """At 1280 and 390 px: sign in, the register's three tables, then the statistics with
    the CSP figures; nothing overflows the phone's width. Screenshots are kept in tmp_path."""
    from playwright.sync_api import expect

    page = browser_page
    with serving(env) as base:  # type: ignore[arg-type]
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{base}/console")
        page.get_by_label("Access token").fill(env.token("map_chair"))
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Coordinated services plans")).to_be_visible()
        expect(page.locator("#overdue tbody tr")).to_have_count(1)
        expect(page.locator("#overdue")).to_contain_text("CSP-201")
        expect(page.locator("#missing")).to_contain_text("S284-000203")
        page.screenshot(path=str(tmp_path / "console-csp-1280.png"), full_page=True)

        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        page.screenshot(path=str(tmp_path / "console-csp-390.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not overflow, "the register is wider than a phone"
        page.get_by_role("link", name="Statistics").click()
        page.get_by_label("From").fill("2020-01-01")
        page.get_by_label("To (inclusive)").fill("2020-12-31")
        page.get_by_role("button", name="Show").click()
        expect(page.locator("#csp-reviews")).to_contain_text("1 overdue")
        page.screenshot(path=str(tmp_path / "console-csp-statistics-390.png"), full_page=True)
    assert (tmp_path / "console-csp-390.png").stat().st_size > 0
