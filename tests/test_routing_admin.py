"""Operators and admins managing the routing table, and CSP review dates: the CLI
(import, export, show, check; csp overdue), the admin API with its role checks, each table
change recorded in the disclosure log, and CSP reviews tracked from csp.update messages
with reminders to the Serious Offenders Coordination Team and the MAP chair."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from audit import AuditStore
from broker.auth import AuthConfig, LocalIssuer, Role
from broker.http.app import ApiDeps, create_app
from broker.wire.envelope import Sender
from routing import RoutingStore
from tests.conftest import s284

TABLE = Path(__file__).parent.parent / "docs" / "examples" / "routing-table.yaml"


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_cli_imports_shows_exports_and_checks_the_table(home, tmp_path):
    """`import` reports the new version and is recorded in the disclosure log; `export`
    round-trips; `show` lists contact ids (never names); `check` exits 3 naming gaps."""
    first = s284("routing", "import", str(TABLE), "--home", str(home), "--as", "ops-0001")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("routing table v1 imported")
    exported = s284("routing", "export", "--home", str(home))
    again = tmp_path / "again.yaml"
    again.write_text(exported.stdout)
    second = s284("routing", "import", str(again), "--home", str(home), "--as", "ops-0002")
    assert "v2 imported (0 added, 0 removed, 0 changed)" in second.stdout
    shown = s284("routing", "show", "--home", str(home))
    assert "pol-nwm-017" in shown.stdout
    assert "Sgt. Jo Example" not in shown.stdout
    check = s284("routing", "check", "--home", str(home), "--json")
    gaps = yaml.safe_load(check.stdout)
    assert check.returncode == (3 if gaps else 0)
    audit = AuditStore.open(f"sqlite:///{home / 'audit.db'}")
    changes = [r for r in audit.records() if r["event"] == "routing_changed"]
    audit.close()
    assert [c["sender_person"] for c in changes] == ["ops-0001", "ops-0002"]
    assert changes[1]["reason"].startswith("routing table v1 -> v2: 0 added")


def test_cli_refuses_a_bad_table_naming_the_row(home, tmp_path):
    """A typo in a row is an error naming it, exit 1, and nothing is imported."""
    doc = yaml.safe_load(TABLE.read_text())
    doc["contacts"][0]["deupty"] = doc["contacts"][0].pop("deputy")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    result = s284("routing", "import", str(bad), "--home", str(home), "--as", "ops-0001")
    assert result.returncode == 1
    assert "deupty" in result.stderr
    assert "Traceback" not in result.stderr
    assert "no routing table imported yet" in s284("routing", "show", "--home", str(home)).stdout


@pytest.fixture
def admin_api(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    routing, audit = RoutingStore.open(url), AuditStore.open(url)
    issuer = LocalIssuer.for_home(tmp_path / "home")
    config = AuthConfig("s284-local", "s284-audit", str(issuer.public_path))
    issuer.ensure()
    app = create_app({}, ApiDeps(audit=audit, auth=config, routing=routing, node="test"))

    def bearer(role, agency=None):
        tok = issuer.issue(config, "admin-0001", role, agency, 600)
        return {"Authorization": f"Bearer {tok}"}

    yield app, bearer, routing, audit
    routing.close()
    audit.close()


async def test_admin_api_replaces_the_table_and_others_may_only_read(admin_api):
    """An admin PUTs a new table (recorded in the log); an auditor reads it and its gaps;
    a privacy officer may not change it (403); no token is 401."""
    app, bearer, _, audit = admin_api
    doc = yaml.safe_load(TABLE.read_text())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/api/v1/routing/table")).status_code == 401
        missing = await http.get("/api/v1/routing/table", headers=bearer(Role.AUDITOR))
        assert (missing.status_code, missing.json()["error"]) == (404, "routing.no_table")
        refused = await http.put(
            "/api/v1/routing/table", json=doc, headers=bearer(Role.PRIVACY_OFFICER, "police")
        )
        assert refused.status_code == 403
        put = await http.put("/api/v1/routing/table", json=doc, headers=bearer(Role.ADMIN))
        assert put.status_code == 200, put.text
        assert put.json()["version"] == 1
        got = await http.get("/api/v1/routing/table", headers=bearer(Role.AUDITOR))
        assert got.json()["areas"] == doc["areas"]
        gaps = await http.get("/api/v1/routing/check", headers=bearer(Role.AUDITOR))
        assert gaps.status_code == 200
        bad = await http.put("/api/v1/routing/table", json={"areas": 3}, headers=bearer(Role.ADMIN))
        assert (bad.status_code, bad.json()["error"]) == (422, "routing.bad_table")
    [change] = [r for r in audit.records() if r["event"] == "routing_changed"]
    assert change["sender_person"] == "admin-0001"


async def test_csp_overdue_through_the_api_and_the_cli(admin_api, tmp_path):
    """A plan last reviewed seven months ago is overdue; one reviewed last month is not."""
    app, bearer, routing, _ = admin_api
    today = datetime.now(UTC).date()
    routing.record_csp_review("S284-000930", "csp-old", today - timedelta(days=215))
    routing.record_csp_review("S284-000931", "csp-new", today - timedelta(days=30))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        overdue = await http.get(
            "/api/v1/csp/overdue", headers=bearer(Role.PRIVACY_OFFICER, "health")
        )
    assert [r["csp_id"] for r in overdue.json()] == ["csp-old"]
    listed = s284("csp", "overdue", "--db", f"sqlite:///{tmp_path / 'audit.db'}")
    assert listed.stdout.startswith("1 CSP review(s) overdue")
    assert "csp-old" in listed.stdout


async def test_csp_update_tracks_the_review_and_reminders_reach_the_reviewers(twin_deployment):
    """Corrections' csp.update sets the next review six months on; as the due date nears,
    the MAP chair (at Corrections) and the Serious Offenders Coordination Team (a DFFH team)
    are each reminded once at 30 days, each on its own agency's notice stream, and each
    agency's reminder is in the disclosure log."""
    stop = asyncio.Event()
    officer = Sender(agency="corrections", unit="ccs", person_id="cm-0042", role="case_manager")
    routing = RoutingStore.open(twin_deployment.settings.database_url)
    routing.import_table(yaml.safe_load(TABLE.read_text()), "ops-0001")
    async with (
        twin_deployment.gateway(stop) as running,
        await twin_deployment.client("corrections", officer) as sender,
    ):
        receipt = await sender.send(
            kind="csp.update", purpose="csp_preparation", offender="S284-000932",
            to=["health"], payload={"csp_id": "csp-932", "reviewed_on": "2026-01-15"},
            order_status="supervision_order",
        )  # fmt: skip
        assert receipt.accepted
        [review] = routing.csp_reviews()
        assert (review.csp_id, review.due) == ("csp-932", date(2026, 7, 15))
        thirty_days_before = datetime(2026, 6, 16, 9, 0, tzinfo=UTC)
        await running.alerts.tick(thirty_days_before)
        await running.alerts.tick(thirty_days_before)  # once only
        notices = [n async for n in sender.notices()]
        async with await twin_deployment.client("dffh") as dffh:
            at_dffh = [n async for n in dffh.notices()]
    routing.close()
    assert [(n.event, n.contact, n.milestone) for n in notices] == [
        ("csp_review_due", "map-chair", "30d"),
    ]
    assert [(n.event, n.contact, n.agency) for n in at_dffh] == [
        ("csp_review_due", "soct", "dffh"),
    ]
    audit = AuditStore.open(twin_deployment.settings.database_url)
    reminders = [r for r in audit.records() if r["reason_code"] == "csp.review_30d"]
    audit.close()
    assert sorted(r["recipient_agency"] for r in reminders) == ["corrections", "dffh"]


async def test_a_routing_database_outage_is_503_and_lands_in_the_access_log(tmp_path):
    """With the routing database gone (the log's still up), reading the table answers 503
    routing.unavailable, and the access log an auditor reads shows that 503."""
    routing = RoutingStore.open(f"sqlite:///{tmp_path / 'routing.db'}")
    audit = AuditStore.open(f"sqlite:///{tmp_path / 'audit.db'}")
    issuer = LocalIssuer.for_home(tmp_path / "home")
    issuer.ensure()
    config = AuthConfig("s284-local", "s284-audit", str(issuer.public_path))
    app = create_app({}, ApiDeps(audit=audit, auth=config, routing=routing, node="test"))
    routing.engine.dispose()
    for path in sorted(tmp_path.glob("routing.db*")):
        path.unlink()
    (tmp_path / "routing.db").mkdir()  # cannot be opened, nor created afresh
    tok = {"Authorization": f"Bearer {issuer.issue(config, 'aud-1', Role.AUDITOR, None, 600)}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        r = await http.get("/api/v1/routing/table", headers=tok)
        log = (await http.get("/api/v1/audit/access", headers=tok)).json()["entries"]
    assert (r.status_code, r.json()["error"]) == (503, "routing.unavailable")
    assert (log[0]["path"], log[0]["status"]) == ("/api/v1/routing/table", 503)
    routing.close()
    audit.close()
