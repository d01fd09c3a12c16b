"""The oversight figures the registers give (docs/oversight.md 2.4): CSPs developed and
agreed, CSP reviews due / on time / late / overdue, breaches by the action taken, and alerts
by the area and topic they were routed on. A hand-built history, counted by hand, on SQLite
and PostgreSQL; the MAP chair and the Authority read them over HTTP; the Corrections
adapter's breach with its action reaches `s284 stats` through the gateway.
All people, plans and offenders are synthetic."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import httpx
import pytest

from audit import AuditStore, Period, records
from broker import BreachAction
from broker.auth import AuthConfig, LocalIssuer, Role
from broker.http.app import ApiDeps, create_app
from broker.http.oversight import oversight_statistics
from broker.ids import new_id
from broker.wire.payloads import NOT_STATED, UNRECOGNISED, breach_action
from routing import RoutingStore
from tests.adapter_kit import adapter, make_config
from tests.conftest import s284
from tests.test_oversight import _disclosed, at

MARCH = ("2026-03-01", "2026-03-31")
TODAY = date(2026, 4, 15)


def d(month: int, day: int, year: int = 2026) -> date:
    return date(year, month, day)


def _plans(store: RoutingStore) -> None:
    """Review due dates in March 2026: P1 10 Mar (reviewed 5 Mar: on time), P2 20 Mar
    (reviewed 2 Apr: late), P3 25 Mar (not reviewed: overdue), P4 28 Mar (plan closed on
    1 Mar: not due), P9 12 Mar (closed that day: not due), P7 30 Mar (order ended 5 Apr,
    never reviewed: overdue). P5 created and endorsed in March, P6 created in March; P8 due
    30 Apr (not yet due on 15 Apr)."""
    events = [
        ("S284-000101", "P1", "created", d(8, 20, 2025)),
        ("S284-000101", "P1", "endorsed", d(9, 10, 2025)),
        ("S284-000101", "P1", "reviewed", d(3, 5)),
        ("S284-000101", "P1", "reviewed", d(3, 5)),  # redelivered: counts once
        ("S284-000101", "P1", "endorsed", d(9, 1, 2025)),  # late arrival: changes nothing
        ("S284-000102", "P2", "endorsed", d(9, 20, 2025)),
        ("S284-000102", "P2", "reviewed", d(4, 2)),
        ("S284-000103", "P3", "endorsed", d(9, 25, 2025)),
        ("S284-000104", "P4", "endorsed", d(9, 28, 2025)),
        ("S284-000104", "P4", "closed", d(3, 1)),
        ("S284-000109", "P9", "endorsed", d(9, 12, 2025)),  # due 12 Mar ...
        ("S284-000109", "P9", "closed", d(3, 12)),  # ... closed that day: not due
        ("S284-000105", "P5", "created", d(3, 3)),
        ("S284-000105", "P5", "endorsed", d(3, 17)),
        ("S284-000106", "P6", "created", d(3, 30)),
        ("S284-000107", "P7", "endorsed", d(9, 30, 2025)),
        ("S284-000108", "P8", "endorsed", d(10, 31, 2025)),
    ]
    for offender, plan, status, on in events:
        store.record_csp_event(offender, plan, status, on)
    store.close_csps("S284-000107", d(4, 5), "the order ended")


def _breaches(store: RoutingStore) -> None:
    """March: two warnings, one with no action stated, one outside the vocabulary; one in
    April (outside); one redelivered."""
    rows = [
        ("M1", "warning_given", at(3, 2)),
        ("M2", "warning_given", at(3, 9)),
        ("M2", "warning_given", at(3, 9)),  # redelivered
        ("M3", NOT_STATED, at(3, 12)),
        ("M4", UNRECOGNISED, at(3, 31, 23, 59)),
        ("M5", "charged", at(4, 1, 0, 0)),
    ]
    for message_id, action, when in rows:
        store.record_breach(message_id, "S284-000101", "corrections", action, when)


EXPECTED_CSP = {
    "developed": 2,
    "agreed": 1,
    "reviews_due": 4,
    "reviews_on_time": 1,
    "reviews_late": 1,
    "reviews_overdue": 2,
    "reviews_not_yet_due": 0,
}
EXPECTED_BREACHES = {
    "total": 4,
    "by_action": {"not_stated": 1, "unrecognised": 1, "warning_given": 2},
}


@pytest.fixture
def registers(store_url):
    routing, audit = RoutingStore.open(store_url), AuditStore.open(store_url)
    _plans(routing)
    _breaches(routing)
    yield routing, audit
    routing.close()
    audit.close()


def test_every_register_figure_of_a_known_history(registers):
    """March 2026, on 15 April: each figure equals the hand count, on SQLite and PostgreSQL."""
    routing, audit = registers
    period = Period.parse(*MARCH)
    figures = oversight_statistics(audit, routing, period, TODAY)
    csp = figures["csp"]
    assert {k: csp[k] for k in EXPECTED_CSP} == EXPECTED_CSP
    assert csp["review_reminders_by_milestone"] == {}  # the log's figure, kept beside them
    assert figures["breaches"] == EXPECTED_BREACHES
    for now_computed in ("csps_developed_and_agreed", "csp_reviews_done_on_time", "breach_actions"):
        assert now_computed not in figures["not_computable"]
    assert list(figures)[-1] == "not_computable"
    assert "S284-000" not in json.dumps(figures)  # counts name nobody


def test_a_due_date_not_yet_reached_and_the_clock_of_today(registers):
    """April: P8's review (due 30 Apr) is not yet due on 15 Apr and overdue on 1 May;
    P1's and P5's next dates fall in September, outside."""
    routing, audit = registers
    april = Period.parse("2026-04-01", "2026-04-30")
    on_15th = oversight_statistics(audit, routing, april, TODAY)["csp"]
    assert (on_15th["reviews_due"], on_15th["reviews_not_yet_due"]) == (1, 1)
    on_1st_may = oversight_statistics(audit, routing, april, d(5, 1))["csp"]
    assert (on_1st_may["reviews_overdue"], on_1st_may["reviews_not_yet_due"]) == (1, 0)
    september = oversight_statistics(audit, routing, Period.parse("2026-09-01", "2026-09-30"))
    assert september["csp"]["reviews_due"] == 2  # P1 5 Sep, P5 17 Sep (P2's is 2 Oct)


def test_the_breach_action_vocabulary():
    """The payload's `action` as the register keeps it: absent, known, or not one of ours."""
    assert breach_action(None) == NOT_STATED
    assert breach_action("charged") == "charged"
    assert breach_action("shouted") == UNRECOGNISED
    assert breach_action(3) == UNRECOGNISED
    assert {a.value for a in BreachAction} >= {"warning_given", "no_further_action"}


def test_alerts_by_area_and_topic_and_older_records_unchanged(tmp_path):
    """An alert's area and topic are members of its `alert_routed` record only when set:
    a record without them keeps the exact canonical form (no new member), and counts as
    `(not recorded)`; a parked alert with no area counts under `(none)`."""
    store = AuditStore.open(f"sqlite:///{tmp_path / 'a.db'}")
    a = _disclosed(at(3, 10), "corrections", "police", "offender_management", "risk.alert")
    b = _disclosed(at(3, 11), "corrections", "dffh", "offender_management", "risk.alert")
    c = _disclosed(at(3, 12), "corrections", "police", "offender_management", "risk.alert")
    routed = [
        records.alert_routed(new_id(), a, "c-1", None, duty=False, area="geelong", topic="risk"),
        records.alert_routed(new_id(), b, "duty", "routing.no_area", duty=True, topic="housing"),
        records.alert_routed(new_id(), c, "c-2", None, duty=False),  # as before this format
    ]
    try:
        store.append([a, b, c, *routed])
        figures = oversight_statistics(store, None, Period.parse(*MARCH))["dunedin"]
        canon = [json.loads(r["canonical"]) for r in _canonicals(store)]
    finally:
        store.close()
    assert figures["alerts_by_area"] == {"(none)": 1, "(not recorded)": 1, "geelong": 1}
    assert figures["alerts_by_topic"] == {"(not recorded)": 1, "housing": 1, "risk": 1}
    by_id = {m["record_id"]: m for m in canon}
    assert (by_id[routed[0].record_id]["area"], by_id[routed[0].record_id]["topic"]) == (
        "geelong",
        "risk",
    )
    assert "area" not in by_id[routed[1].record_id]
    assert "area" not in by_id[routed[2].record_id]
    assert "topic" not in by_id[routed[2].record_id]
    assert "area" not in by_id[a.record_id]  # a disclosure is as it always was


def _canonicals(store: AuditStore) -> list[dict[str, str]]:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(text("SELECT canonical FROM audit_log")).mappings()]


async def test_the_map_chair_and_the_authority_read_the_register_figures(registers, tmp_path):
    """Over HTTP, with the register in the process: the MAP chair and the Authority get the
    same figures; the MAP chair is refused the records (403) like the Authority."""
    routing, audit = registers
    issuer = LocalIssuer.for_home(tmp_path / "home")
    issuer.ensure()
    auth = AuthConfig("s284-local", "s284-audit", str(issuer.public_path))
    app = create_app({}, ApiDeps(audit=audit, auth=auth, routing=routing))

    def bearer(role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {issuer.issue(auth, 'chair', role, None, 600)}"}

    march = {"from": MARCH[0], "to": MARCH[1]}
    url = "/api/v1/oversight/statistics"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for role in (Role.MAP_CHAIR, Role.PSA):
            got = await c.get(url, params=march, headers=bearer(role))
            assert got.status_code == 200, got.text
            assert got.json()["breaches"] == EXPECTED_BREACHES
            assert got.json()["csp"]["developed"] == EXPECTED_CSP["developed"]
        chair = bearer(Role.MAP_CHAIR)
        refused = await c.get("/api/v1/audit/records", headers=chair)
        assert (refused.status_code, refused.json()["error"]) == (403, "auth.forbidden")
        overdue = await c.get("/api/v1/csp/overdue", headers=chair)
        assert overdue.status_code == 200
        assert {r["csp_id"] for r in overdue.json()} >= {"P3"}


def test_stats_text_shows_the_register_figures(tmp_path):
    """`s284 stats` prints the new figures by name (text and JSON), from the same database
    as the log (the SQL itself runs on both engines above)."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    routing = RoutingStore.open(url)
    try:
        _plans(routing)
        _breaches(routing)
    finally:
        routing.close()
    out = s284("stats", "--from", MARCH[0], "--to", MARCH[1], "--db", url)
    assert out.returncode == 0, out.stderr
    for line in ("  developed: 2", "  agreed: 1", "  reviews_late: 1", "    warning_given: 2"):
        assert line in out.stdout
    as_json = s284("stats", "--from", MARCH[0], "--to", MARCH[1], "--db", url, "--json")
    assert json.loads(as_json.stdout)["breaches"] == EXPECTED_BREACHES


def test_a_map_chair_token_is_issued_without_an_agency(twin_deployment):
    """`s284 token --role map_chair` works as the README says (no --agency)."""
    home = str(twin_deployment.home.path)
    out = s284("token", "--role", "map_chair", "--subject", "M. Chair", "--home", home)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].count(".") == 2  # a JWT


async def test_a_breach_and_its_action_reach_the_figures(twin_deployment, twin_gateway, tmp_path):
    """The Corrections adapter's breach with `action_taken` goes through the gateway as the
    payload's `action`; the breach register counts it; `s284 stats` shows it by action. An
    unknown action is refused by the adapter (quarantined with a reason), never sent."""
    config = make_config(tmp_path, twin_deployment.home.path, "corrections")
    today = datetime.now(UTC).date().isoformat()
    breaches = [
        {
            "event_id": f"BR-{n}",
            "event_type": "breach",
            "offender_id": "CCS-50002",
            "condition": "curfew",
            "detected_at": f"{today}T01:00:00Z",
            **({"action_taken": action} if action else {}),
        }
        for n, action in enumerate(("referred_to_police", None, "shouted_at"))
    ]
    order = {
        "event_id": "ORD-CCS-50002",
        "event_type": "order_status",
        "offender_id": "CCS-50002",
        "order_type": "supervision_order",
        "expiry_date": "2031-06-30",
    }
    (config.source / "orders-01.json").write_text(json.dumps([order, *breaches]))
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
        quarantined = a.state.quarantined()
    assert len(quarantined) == 1
    assert "action_taken must be one of" in json.dumps([str(q) for q in quarantined])
    home = str(twin_deployment.home.path)
    out = s284("stats", "--from", today, "--to", today, "--home", home, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["breaches"] == {
        "total": 2,
        "by_action": {"not_stated": 1, "referred_to_police": 1},
    }


async def test_a_breach_with_an_action_outside_the_vocabulary_is_delivered_and_counted(
    twin_deployment, twin_gateway
):
    """Sent through the SDK (not the adapter, which would refuse it): the gateway delivers
    it as the policy allows, and the breach register counts it as `unrecognised`, beside a
    breach whose action is one of the vocabulary."""
    payload = {"condition_breached": "curfew", "detected_at": "2026-06-01T10:00:00Z"}
    async with await twin_deployment.client("police") as police:
        for action in ("shouted_at", BreachAction.CHARGED.value):
            receipt = await police.send(
                kind="order.breach",
                purpose="offender_management",
                offender="S284-000131",
                to=["corrections"],
                payload={**payload, "action": action},
            )
            assert receipt.status == "accepted", receipt
    today = datetime.now(UTC).date().isoformat()
    home = str(twin_deployment.home.path)
    out = s284("stats", "--from", today, "--to", today, "--home", home, "--json")
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert figures["breaches"] == {"total": 2, "by_action": {"charged": 1, "unrecognised": 1}}
    assert figures["dunedin"]["breaches_reported"] == 2
