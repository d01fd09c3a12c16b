"""Oversight statistics: a known synthetic history, counted by hand, and every figure of
`s284 stats` and `GET /api/v1/oversight/statistics` checked against it; the Authority's
`psa` role reads counts and nothing else; a backwards period is a clear error."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from audit import AuditRecord, AuditStore, Period, PeriodError, records, statistics
from broker.auth import AuthConfig, LocalIssuer, Role
from broker.http.app import ApiDeps, create_app
from broker.ids import new_id
from tests.conftest import s284

OM = "s 284(e): managing an offender"
CSP = "s 284(c): preparing or reviewing a coordinated services plan"
RR = "s 284(h): necessary to reduce a risk of offence or threat"
OFFENDER = "S284-000777"  # synthetic; must never appear in any figure


def at(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def _disclosed(
    when: datetime, sender: str, to: str, purpose: str, kind: str, *, review: bool = False
) -> AuditRecord:
    origin = records.Origin(when, sender, "n1")
    about = records.About(new_id(), 1, sender, "staff-1", OFFENDER, kind, purpose)
    ruling = records.Ruling("permitted", ("p",), "v1", review_required=review)
    return records.disclosure(new_id(), origin, about, to, ruling)


def _history() -> list[AuditRecord]:
    """The hand count of March 2026 is in EXPECTED below; two records fall outside it."""
    d1 = _disclosed(at(3, 2), "corrections", "police", "offender_management", "service.progress")
    d2 = _disclosed(at(3, 3), "corrections", "police", "offender_management", "order.breach")
    d3 = _disclosed(at(3, 4), "corrections", "dffh", "csp_preparation", "csp.update")
    d4 = _disclosed(at(3, 5), "police", "corrections", "risk_reduction", "risk.alert", review=True)
    alert_a = _disclosed(at(3, 10), "corrections", "police", "offender_management", "risk.alert")
    alert_b = _disclosed(
        at(3, 31, 23, 40), "corrections", "dffh", "offender_management", "risk.alert"
    )
    alert_c = _disclosed(at(3, 12), "corrections", "police", "offender_management", "risk.alert")
    outside = [
        _disclosed(
            at(2, 28, 23, 59), "corrections", "police", "offender_management", "risk.update"
        ),
        _disclosed(at(4, 1, 0, 0), "corrections", "police", "offender_management", "risk.update"),
    ]
    return [
        d1, d2, d3, d4, alert_a, alert_b, alert_c, *outside,
        *_refusals(), *_after_delivery(d1, d4),
        *_alerts(alert_a, alert_b, alert_c),
    ]  # fmt: skip


def _refusals() -> list[AuditRecord]:
    denied = records.refusal(
        new_id(),
        records.Origin(at(3, 6), "health", "n1"),
        records.About(new_id(), 2, "health", kind="service.progress", purpose="csp_preparation"),
        "policy.denied",
        "disclosure to dffh: no",
        attempt="2:1",
        policy_version="v1",
    )
    malformed = records.refusal(
        new_id(),
        records.Origin(at(3, 7), "police", "n1"),
        records.About(ingress_seq=3),
        "frame.malformed",
        "not a JWS",
        attempt="3:1",
        policy_version="v1",
    )
    confirmation = records.confirmation_refused(
        new_id(),
        records.Origin(at(3, 8), "dffh", "n1"),
        records.About(ingress_seq=4),
        "confirm.unknown_delivery",
        "no such delivery",
        attempt="4",
    )
    return [denied, malformed, confirmation]


def _after_delivery(d1: AuditRecord, d4: AuditRecord) -> list[AuditRecord]:
    received = records.received(
        new_id(),
        records.Origin(at(3, 2, 10), "police", "n1"),
        records.About(),
        d1.record_id,
        "police",
    )
    reviewed = records.review(
        new_id(),
        records.Origin(at(3, 9), "corrections", "api"),
        records.About(sender_agency="corrections"),
        d4.record_id,
        "appropriate",
    )
    due = records.CspDue(OFFENDER, "csp-1", date(2026, 4, 3), "14d")
    reminder = records.csp_reminder(new_id(), "n1", due, "corrections", date(2026, 3, 20))
    return [received, reviewed, reminder]


def _alerts(a: AuditRecord, b: AuditRecord, c: AuditRecord) -> list[AuditRecord]:
    """A to a contact, acknowledged in 10 min; B parked (no area), acknowledged 30 min later
    on 1 April (still B's time); C to a contact, escalated to the deputy, then the duty inbox."""
    made = [
        records.alert_routed(new_id(), a, "c-1", None, duty=False, area="barwon", topic="risk"),
        records.alert_routed(new_id(), b, "duty", "routing.no_area", duty=True, topic="housing"),
        records.alert_routed(new_id(), c, "c-2", None, duty=False, area="barwon", topic="risk"),
    ]
    for alert, held, after in (
        (a, records.Held("A", "police", "c-1", 0), timedelta(minutes=10)),
        (b, records.Held("B", "dffh", "duty", 0), timedelta(minutes=30)),
    ):
        about = records.About(alert.message_id, sender_agency="corrections")
        origin = records.Origin(alert.occurred_at + after, "corrections", "api")
        made.append(records.acknowledged(new_id(), origin, about, held))
    about_c = records.About(c.message_id, sender_agency="corrections")
    for level, holder, hours in ((1, "c-2-deputy", 1), (2, "duty", 2)):
        origin = records.Origin(c.occurred_at + timedelta(hours=hours), "corrections", "n1")
        made.append(
            records.escalated(new_id(), origin, about_c, records.Held("C", "police", holder, level))
        )
    return made


EXPECTED_FIGURES = {
    "disclosures": {
        "total": 7,
        "review_required": 1,
        "by_ground": {CSP: 1, OM: 5, RR: 1},
        "by_sender_agency": {"corrections": 6, "police": 1},
        "by_recipient_agency": {"corrections": 1, "dffh": 2, "police": 4},
    },
    "refusals": {
        "total": 2,
        "by_reason": {"frame.malformed": 1, "policy.denied": 1},
        "by_ground": {"(none)": 1, CSP: 1},
        "by_agency": {"health": 1, "police": 1},
    },
    "confirmations": {"received": 1, "refused_by_reason": {"confirm.unknown_delivery": 1}},
    "privacy_reviews": {"by_outcome": {"appropriate": 1}},
    "csp": {"review_reminders_by_milestone": {"14d": 1}},
}
EXPECTED_DUNEDIN = {
    "alerts": 3,
    "alerts_by_agency": {"dffh": 1, "police": 2},
    "alerts_by_kind": {"risk.alert": 3},
    "alerts_by_area": {"(none)": 1, "barwon": 2},
    "alerts_by_topic": {"housing": 1, "risk": 2},
    "duty_inbox_parks": 1,
    "duty_inbox_parks_by_reason": {"routing.no_area": 1},
    "duty_inbox_parks_by_agency": {"dffh": 1},
    "escalations": {"to_deputy": 1, "to_duty": 1, "by_agency": {"police": 2}},
    "breaches_reported": 1,
    "acknowledged": 2,
    "acknowledgement_seconds": {"p50": 600.0, "p90": 1800.0},
}


@pytest.fixture
def store(tmp_path: Path):
    store = AuditStore.open(f"sqlite:///{tmp_path / 'audit.db'}")
    store.append(_history())
    yield store
    store.close()


def _check(figures: dict) -> None:
    assert figures["period"] == {
        "from": "2026-03-01T00:00:00.000000Z",
        "to": "2026-04-01T00:00:00.000000Z",
    }
    for name, expected in EXPECTED_FIGURES.items():  # the register's figures: elsewhere
        found = figures[name]
        assert {k: found[k] for k in expected} == expected, name
    assert figures["dunedin"] == EXPECTED_DUNEDIN
    assert "alerts_by_area_or_topic" not in figures["not_computable"]
    # notices and requests are counted from the request register: test_request_register.py
    assert OFFENDER not in json.dumps(figures)
    assert "staff-1" not in json.dumps(figures)


def test_every_count_of_a_known_history(store_url):
    """March 2026 of the synthetic history: every figure equals the hand count, on SQLite
    and PostgreSQL alike."""
    store = AuditStore.open(store_url)
    try:
        store.append(_history())
        _check(statistics(store, Period.parse("2026-03-01", "2026-03-31")))
    finally:
        store.close()


def test_a_flood_counted_in_one_record_counts_exactly(tmp_path):
    """1,000 identical refusals from one agency, counted in one `refusals_counted` record,
    are 1,000 refusals of that agency and reason, beside the one refused one by one."""
    flood = records.refusals_counted(
        new_id(), records.Origin(at(3, 7), "police", "n1"), "frame.malformed", 1000, (10, 1009)
    )
    store = AuditStore.open(f"sqlite:///{tmp_path / 'flood.db'}")
    try:
        store.append([*_refusals()[:1], flood])
        figures = statistics(store, Period.parse("2026-03-01", "2026-03-31"))["refusals"]
    finally:
        store.close()
    assert figures["total"] == 1001
    assert figures["by_reason"] == {"frame.malformed": 1000, "policy.denied": 1}
    assert figures["by_agency"] == {"health": 1, "police": 1000}


def test_an_empty_period_counts_zero_and_no_times(store):
    figures = statistics(store, Period.parse("2025-01-01", "2025-01-31"))
    assert figures["disclosures"]["total"] == 0
    assert figures["dunedin"]["acknowledgement_seconds"] == {"p50": None, "p90": None}


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-03-31", "2026-03-01", "starts (2026-03-31) after it ends (2026-03-01)"),
        ("2026-13-01", "2026-03-31", "is not a date"),
        ("2026-03-01T09:00:00", "2026-03-31", "has no time zone"),
    ],
)
def test_a_bad_period_is_refused(start, end, message):
    with pytest.raises(PeriodError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Period.parse(start, end)


def test_stats_command_prints_the_same_figures(store, tmp_path):
    """`s284 stats --json` gives the API's figures; text output names them; a backwards
    period is a usage error in one line."""
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    out = s284("stats", "--from", "2026-03-01", "--to", "2026-03-31", "--db", db, "--json")
    assert out.returncode == 0, out.stderr
    _check(json.loads(out.stdout))
    text = s284("stats", "--from", "2026-03-01", "--to", "2026-03-31", "--db", db)
    assert "  duty_inbox_parks: 1" in text.stdout
    assert "    p90: 1800.0" in text.stdout
    backwards = s284("stats", "--from", "2026-04-01", "--to", "2026-03-01", "--db", db)
    assert backwards.returncode == 2
    assert "after it ends" in backwards.stderr
    assert "Traceback" not in backwards.stderr


async def test_api_statistics_for_the_authority_and_nothing_more(store, tmp_path):
    """The psa role reads the statistics and is refused the records (403); a contact is
    refused the statistics (403); `from` after `to` is a 400 with a sentence."""
    issuer = LocalIssuer.for_home(tmp_path / "home")
    issuer.ensure()
    auth = AuthConfig("s284-local", "s284-audit", str(issuer.public_path))
    app = create_app({}, ApiDeps(audit=store, auth=auth))

    def bearer(role: Role, agency: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {issuer.issue(auth, 'someone', role, agency, 600)}"}

    url = "/api/v1/oversight/statistics"
    march = {"from": "2026-03-01", "to": "2026-03-31"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        ok = await c.get(url, params=march, headers=bearer(Role.PSA))
        assert ok.status_code == 200
        _check(ok.json())
        records_page = await c.get("/api/v1/audit/records", headers=bearer(Role.PSA))
        assert (records_page.status_code, records_page.json()["error"]) == (403, "auth.forbidden")
        contact = await c.get(url, params=march, headers=bearer(Role.CONTACT, "police"))
        assert contact.status_code == 403
        backwards = {"from": "2026-03-31", "to": "2026-03-01"}
        bad = await c.get(url, params=backwards, headers=bearer(Role.PSA))
        assert bad.status_code == 400
        assert bad.json()["error"] == "oversight.bad_period"
        assert "after it ends" in bad.json()["detail"]
