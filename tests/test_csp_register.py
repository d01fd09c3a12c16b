"""The register of coordinated services plans, fed by Corrections' csp.update events: a
created plan awaits endorsement, endorsement starts the six-month review clock, a late
(older) event changes nothing, closing a plan or ending the order stops its reminders, and
`s284 csp missing` names every offender whose order needs a plan and who has none.

Through the broker: the Corrections adapter's `csp` events (its `csp_status` and
`status_date`, as its system exports them) reach the register, not a warning in the log.
All people and plans are synthetic."""

from __future__ import annotations

import json
from datetime import date

import pytest

from routing import RoutingError, RoutingStore
from tests.adapter_kit import adapter, make_config
from tests.conftest import s284

NOW = date(2026, 6, 1)


@pytest.fixture
def store(store_url):
    s = RoutingStore.open(store_url)
    yield s
    s.close()


def _place(store: RoutingStore, ref: str, order: str = "supervision_order") -> None:
    from datetime import UTC, datetime

    store.set_offender(ref, "cm-0042", "corrections", "north-west-metro", order, datetime.now(UTC))


def test_a_created_plan_awaits_endorsement_and_endorsement_starts_the_clock(store):
    _place(store, "S284-000701")
    created = store.record_csp_event("S284-000701", "CSP-701", "created", date(2026, 5, 1))
    assert (created.status, created.current, created.endorsed_on) == ("created", False, None)
    assert store.csp_reviews() == []  # no review date before endorsement
    [missing] = store.csp_missing()
    assert (missing.offender, missing.in_preparation) == ("S284-000701", ("CSP-701",))

    endorsed = store.record_csp_event("S284-000701", "CSP-701", "endorsed", NOW)
    assert (endorsed.status, endorsed.endorsed_on) == ("endorsed", NOW)
    [review] = store.csp_reviews()
    assert review.due == date(2026, 12, 1)
    assert store.csp_missing() == []


def test_a_late_older_event_changes_nothing(store):
    store.record_csp_event("S284-000702", "CSP-702", "reviewed", date(2026, 9, 1))
    late = store.record_csp_event("S284-000702", "CSP-702", "endorsed", NOW)
    assert (late.status, late.status_on) == ("reviewed", date(2026, 9, 1))
    [review] = store.csp_reviews()
    assert review.due == date(2027, 3, 1)


def test_closing_a_plan_or_ending_the_order_stops_its_reminders(store):
    store.record_csp_event("S284-000703", "CSP-703", "endorsed", NOW)
    store.record_csp_event("S284-000704", "CSP-704", "endorsed", NOW)
    assert len(store.csp_notices_due(date(2026, 12, 1))) == 2

    store.record_csp_event("S284-000703", "CSP-703", "closed", date(2026, 7, 1))
    [closed] = store.close_csps("S284-000704", date(2026, 7, 2), "the order ended")
    assert (closed.status, closed.closed_reason) == ("closed", "the order ended")
    assert store.csp_notices_due(date(2026, 12, 1)) == []
    assert store.overdue(date(2027, 1, 1)) == []
    assert [p.status for p in store.csp_plans()] == ["closed", "closed"]


def test_missing_lists_only_orders_that_need_a_plan(store):
    _place(store, "S284-000710")  # supervision order, no plan
    _place(store, "S284-000711", "interim_supervision_order")  # plan endorsed
    _place(store, "S284-000712", "application_pending")  # plan closed
    _place(store, "S284-000713", "detention_order")  # detained: the register does not ask
    _place(store, "S284-000714", "none")
    store.record_csp_event("S284-000711", "CSP-711", "endorsed", NOW)
    store.record_csp_event("S284-000712", "CSP-712", "endorsed", NOW)
    store.record_csp_event("S284-000712", "CSP-712", "closed", date(2026, 6, 2))
    assert [m.offender for m in store.csp_missing()] == ["S284-000710", "S284-000712"]


def test_an_unknown_status_is_a_routing_error(store):
    with pytest.raises(RoutingError, match="csp_status must be one of"):
        store.record_csp_event("S284-000720", "CSP-720", "approved", NOW)


def _events(ref: str) -> list[dict[str, object]]:
    order = {
        "event_id": f"ORD-{ref}",
        "event_type": "order_status",
        "offender_id": ref,
        "order_type": "supervision_order",
        "expiry_date": "2031-06-30",
    }
    csp = {
        "event_id": f"CSP-{ref}-1",
        "event_type": "csp",
        "offender_id": ref,
        "order_type": "supervision_order",
        "csp_id": f"CSP-{ref}",
        "csp_status": "endorsed",
        "status_date": "2026-06-01",
        "review_due": "2026-12-01",
    }
    return [order, csp]


async def test_the_corrections_adapter_feeds_the_register(twin_deployment, twin_gateway, tmp_path):
    """Its endorsed plan is in the register with a review due six months on; the order
    ending closes it; `s284 csp plans` and `s284 csp missing` say so."""
    config = make_config(tmp_path, twin_deployment.home.path, "corrections")
    (config.source / "orders-01.json").write_text(json.dumps(_events("CCS-50003")))
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
        assert a.state.quarantined() == []
    home = str(twin_deployment.home.path)
    shown = s284("csp", "plans", "--home", home, "--json")
    assert shown.returncode == 0, shown.stderr
    [plan] = json.loads(shown.stdout)
    assert (plan["status"], plan["endorsed_on"], plan["review_due"]) == (
        "endorsed",
        "2026-06-01",
        "2026-12-01",
    )
    assert s284("csp", "missing", "--home", home).returncode == 0

    ended = {
        "event_id": "ORD-CCS-50003-end",
        "event_type": "order_status",
        "offender_id": "CCS-50003",
        "order_type": "none",
    }
    (config.source / "orders-02.json").write_text(json.dumps([ended]))
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
        assert a.state.quarantined() == []
    [plan] = json.loads(s284("csp", "plans", "--home", home, "--json").stdout)
    assert (plan["status"], plan["closed_reason"], plan["review_due"]) == (
        "closed",
        "the order ended",
        None,
    )


def test_csp_missing_exits_3_and_names_the_offender(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = RoutingStore.open(url)
    try:
        _place(store, "S284-000730")
        store.record_csp_event("S284-000730", "CSP-730", "created", NOW)
    finally:
        store.close()
    result = s284("csp", "missing", "--db", url)
    assert result.returncode == 3, result.stderr
    assert "S284-000730  supervision_order  managed by cm-0042" in result.stdout
    assert "plan CSP-730 awaits endorsement" in result.stdout
