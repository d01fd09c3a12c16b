"""The request register's figures, commands and console page: a known history of the
Authority's notices and of information requests (the Authority's and SOCT's), counted on
SQLite and PostgreSQL; `s284 psa notices`, `s284 csp overdue`, `s284 stats`, the statistics
API and the console's "Overdue requests" page over HTTP and in Chromium. (How the gateway
feeds the register: tests/test_notices.py.) All parties and references are synthetic."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from audit import AuditStore
from broker.auth import AuthConfig, LocalIssuer, Role
from broker.http.app import ApiDeps, create_app
from routing import Answer, OpenRequest, RoutingStore, request_statistics
from tests.browser import browser_page  # noqa: F401 - the fixture is used by name
from tests.conftest import s284
from tests.test_web_inbox import serving


def _at(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")


N, R = "psa.notice", "info.request"
LAW, CSP, PSA, SOCT = "authorised_by_law", "csp_preparation", "psa/oversight", "dffh/soct"
# (id, recipient, kind, purpose, from agency/unit, issued, respond by, answered or None)
HISTORY = [
    ("N1", "corrections", N, LAW, PSA, "2026-03-02", "2026-03-10", "2026-03-09"),
    ("N1", "police", N, LAW, PSA, "2026-03-02", "2026-03-10", "2026-03-12"),
    ("N2", "dffh", N, LAW, PSA, "2026-03-05", "2026-03-15", None),
    ("N3", "health", N, LAW, PSA, "2026-03-20", "2026-05-01", None),
    ("N4", "corrections", N, LAW, PSA, "2026-02-20", "2026-02-25", "2026-03-05"),
    ("R1", "health", R, LAW, PSA, "2026-03-03", "2026-03-10", "2026-03-20"),
    ("R2", "health", R, CSP, SOCT, "2026-03-04", "2026-03-11", None),
    ("R3", "corrections", R, CSP, SOCT, "2026-03-06", "2026-03-13", "2026-03-13"),
    ("R4", "health", R, CSP, SOCT, "2026-04-02", "2026-04-09", None),
]
NOW = _at("2026-04-15")
MARCH = (_at("2026-03-01", 0), _at("2026-04-01", 0))


def _feed(url: str) -> RoutingStore:
    store = RoutingStore.open(url)
    for rid, to, kind, purpose, sender, issued, due, answered in HISTORY:
        agency, unit = sender.split("/")
        store.requests.open([
            OpenRequest(f"REQ-{rid}", to, kind, purpose, "S284-000800", agency, unit,
                        _at(issued), _at(due))
        ])  # fmt: skip
        if answered:
            store.requests.answer([Answer(f"REQ-{rid}", to, f"ANS-{rid}-{to}", _at(answered))])
    return store


def test_every_count_of_a_known_history(store_url):
    """March: four notices to recipients (one notice to two agencies counts two), two answered
    (one two days late), one overdue; three information requests, two answered (one ten days
    late), SOCT's to Health overdue. February's and April's are outside the period."""
    store = _feed(store_url)
    try:
        figures = request_statistics(store.requests, *MARCH, NOW)
    finally:
        store.close()
    two_days, ten_days = 2 * 86400.0, 10 * 86400.0
    assert figures["notices"] == {
        "issued": 4,
        "answered": 2,
        "answered_on_time": 1,
        "answered_late": 1,
        "unanswered": 2,
        "overdue": 1,
        "late_seconds": {"p50": two_days, "p90": two_days, "max": two_days},
        "by_from_agency": {"psa": 4},
        "by_recipient": {"corrections": 1, "dffh": 1, "health": 1, "police": 1},
    }
    assert figures["information_requests"] == {
        "issued": 3,
        "answered": 2,
        "answered_on_time": 1,
        "answered_late": 1,
        "unanswered": 1,
        "overdue": 1,
        "late_seconds": {"p50": ten_days, "p90": ten_days, "max": ten_days},
        "by_from_agency": {"dffh": 2, "psa": 1},
        "by_recipient": {"corrections": 1, "health": 2},
    }


def test_a_second_answer_and_a_redelivered_request_change_nothing(tmp_path):
    """The first answer counts; a request delivered twice (a redelivered batch) is one row."""
    store = _feed(f"sqlite:///{tmp_path / 'audit.db'}")
    store.requests.answer([Answer("REQ-N1", "corrections", "ANS-again", _at("2026-03-30"))])
    again = OpenRequest(
        "REQ-N2", "dffh", N, LAW, "S284-000800", "psa", "oversight", _at("2026-03-06"),
        _at("2026-03-20"),
    )  # fmt: skip
    store.requests.open([again])
    rows = {(r.request_id, r.recipient): r for r in store.requests.rows()}
    assert rows["REQ-N1", "corrections"].response_id == "ANS-N1-corrections"
    assert rows["REQ-N2", "dffh"].respond_by == _at("2026-03-15")
    assert len(rows) == len(HISTORY)


def test_commands_list_overdue_requests_and_exit_3(tmp_path):
    """`s284 psa notices` lists the Authority's, `s284 csp overdue` SOCT's overdue requests
    (by the real clock every unanswered one of the history is overdue); each exits 3 while
    any is."""
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    _feed(db).close()
    notices = s284("psa", "notices", "--db", db, "--overdue", "--json")
    assert notices.returncode == 3, notices.stderr
    listed = json.loads(notices.stdout)
    overdue = {(i["request_id"], i["to"]) for i in listed}
    assert overdue == {("REQ-N2", "dffh"), ("REQ-N3", "health")}
    assert all(i["overdue"] and i["answered_at"] is None for i in listed)
    text = s284("psa", "notices", "--db", db)
    assert text.stdout.startswith("6 notice(s) and request(s) of the Authority, 2 overdue")
    assert "REQ-N1  psa.notice  psa/oversight -> police" in text.stdout
    assert "answered 2026-03-12, 2.0 day(s) late" in text.stdout
    soct = s284("csp", "overdue", "--db", db, "--json")
    assert soct.returncode == 3
    assert [i["request_id"] for i in json.loads(soct.stdout)["requests"]] == ["REQ-R2", "REQ-R4"]
    assert "2 information request(s) overdue" in s284("csp", "overdue", "--db", db).stdout


def test_nothing_overdue_exits_0(tmp_path):
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    RoutingStore.open(db).close()
    assert s284("psa", "notices", "--db", db).returncode == 0
    out = s284("csp", "overdue", "--db", db)
    assert out.returncode == 0
    assert out.stdout.splitlines()[-1] == "0 information request(s) overdue"


@pytest.fixture
def env(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    routing, audit = _feed(url), AuditStore.open(url)
    issuer = LocalIssuer.for_home(tmp_path / "home")
    issuer.ensure()
    auth = AuthConfig("s284-local", "s284-audit", str(issuer.public_path))
    app = create_app({}, ApiDeps(audit=audit, auth=auth, routing=routing))

    def token(role: str, agency: str | None) -> str:
        return issuer.issue(auth, "P. Officer", Role(role), agency, 600)

    yield app, token, url
    routing.close()
    audit.close()


async def test_statistics_api_and_stats_command_carry_the_request_figures(env):
    """The Authority's statistics include `requests` (the register's figures for the
    period, as of now) and no longer list notices as not computable; `s284 stats` too."""
    app, token, url = env
    march = {"from": "2026-03-01", "to": "2026-03-31"}
    headers = {"Authorization": f"Bearer {token('psa', None)}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        answer = await c.get("/api/v1/oversight/statistics", params=march, headers=headers)
    got = answer.json()
    assert got["requests"]["notices"]["issued"] == 4
    assert got["requests"]["information_requests"]["answered"] == 2
    assert "notices_issued_and_answered" not in got["not_computable"]
    out = s284("stats", "--from", "2026-03-01", "--to", "2026-03-31", "--db", url, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["requests"] == got["requests"]


async def _page(app, token: str, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as c:
        signed = await c.post("/console/login", data={"token": token})
        assert signed.status_code == 303
        return await c.get(path)


ROW = re.compile(
    r'<tr class="request[^"]*">\s*<td class="short">([^<]+)</td>'
    r'(?:\s*<td[^>]*>[^<]*</td>){2}\s*<td class="short">([^<]+)</td>'
)


async def test_console_lists_overdue_requests_by_role_with_a_csv(env):
    """The Authority sees its own overdue notices and requests, not SOCT's; Health's privacy
    officer only those Health sent or received; the CSV holds the same rows."""
    app, token, _ = env
    psa = await _page(app, token("psa", None), "/console/requests")
    assert psa.status_code == 200
    assert "Overdue requests" in psa.text
    # by the real clock every unanswered request of the history is overdue
    assert set(ROW.findall(psa.text)) == {("REQ-N2", "dffh"), ("REQ-N3", "health")}
    officer = await _page(app, token("privacy_officer", "health"), "/console/requests")
    assert set(ROW.findall(officer.text)) == {
        ("REQ-N3", "health"), ("REQ-R2", "health"), ("REQ-R4", "health")
    }  # fmt: skip
    exported = await _page(app, token("auditor", None), "/console/requests.csv?all=1")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == len(HISTORY)
    late = {(r["request_id"], r["to"]): r["late_days"] for r in rows}
    assert late["REQ-N1", "police"] == "2.0"
    assert "payload" not in exported.text


async def test_console_statistics_show_the_request_figures(env):
    """The console's statistics page says what the API says about notices and requests,
    and its CSV carries the same figures."""
    app, token, _ = env
    march = "?from=2026-03-01&to=2026-03-31"
    page = await _page(app, token("psa", None), "/console/statistics" + march)
    exported = await _page(app, token("psa", None), "/console/statistics.csv" + march)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token('psa', None)}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        period = {"from": "2026-03-01", "to": "2026-03-31"}
        answer = await c.get("/api/v1/oversight/statistics", params=period, headers=headers)
    for key in ("notices", "information_requests"):
        r = answer.json()["requests"][key]
        shown = re.search(rf'<dd id="requests-{key}">([^<]+)</dd>', page.text)
        assert shown, page.text
        assert shown.group(1).startswith(
            f"{r['issued']} issued: {r['answered_on_time']} answered on time, "
            f"{r['answered_late']} late"
        ), shown.group(1)
        assert shown.group(1).endswith(f"{r['unanswered']} unanswered ({r['overdue']} overdue)")
    rows = dict(csv.reader(io.StringIO(exported.text)))
    assert rows["requests.notices.issued"] == str(answer.json()["requests"]["notices"]["issued"])


async def test_console_requests_page_needs_an_oversight_sign_in(env):
    app = env[0]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as c:
        r = await c.get("/console/requests")
    assert (r.status_code, r.headers["location"]) == (303, "/console/login")


@pytest.mark.browser
@pytest.mark.slow
def test_the_authority_reads_overdue_requests_in_a_real_browser(
    env,
    browser_page,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
):
    """At 390 px: the Authority signs in, follows "Overdue requests", sees its two overdue
    notices, then all six of its own; nothing overflows a phone. Screenshots in tmp_path."""
    from playwright.sync_api import expect

    app, token, _ = env
    page = browser_page
    with serving(_Served(app)) as base:  # type: ignore[arg-type]
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{base}/console/login")
        page.get_by_label("Access token").fill(token("psa", None))
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Overdue requests").click()
        expect(page.get_by_role("heading", name="Overdue requests")).to_be_visible()
        expect(page.locator("#requests tbody tr")).to_have_count(2)
        page.screenshot(path=str(tmp_path / "console-requests-390.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not overflow, "the requests page is wider than a phone"
        page.get_by_role("link", name="Show all").click()
        expect(page.locator("#requests tbody tr")).to_have_count(6)
    assert (tmp_path / "console-requests-390.png").stat().st_size > 0


class _Served:
    def __init__(self, app: object) -> None:
        self.app = app


def test_history_deadlines_are_in_the_past():
    """The console tests read "overdue" by the real clock: the history's deadlines are."""
    assert max(_at(row[6]) for row in HISTORY) < datetime.now(UTC) - timedelta(days=1)
