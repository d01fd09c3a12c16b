"""CSP reviews: the next review is due six months after the last (month ends clamp), the
overdue list, and the 30-day, 14-day and due-date notices each sent once, across restarts."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from routing import CspNotice, CspReview, RoutingStore, add_months


@pytest.fixture
def store(store_url):
    s = RoutingStore.open(store_url)
    yield s
    s.close()


@pytest.mark.parametrize(
    ("reviewed", "due"),
    [
        (date(2026, 1, 15), date(2026, 7, 15)),
        (date(2023, 8, 31), date(2024, 2, 29)),  # leap year
        (date(2024, 8, 31), date(2025, 2, 28)),
        (date(2026, 3, 31), date(2026, 9, 30)),
        (date(2026, 9, 30), date(2027, 3, 30)),
    ],
)
def test_the_next_review_is_due_six_months_after_the_last(store, reviewed, due):
    """Six calendar months on; a day the month lacks becomes that month's last day."""
    assert store.record_csp_review("S284-000123", "csp-1", reviewed).due == due
    assert add_months(reviewed, 6) == due


def test_the_latest_review_is_kept_when_an_older_one_arrives_late(store):
    """A csp.update for an earlier review, delivered late, does not move the due date back."""
    store.record_csp_review("S284-000123", "csp-1", date(2026, 3, 1))
    kept = store.record_csp_review("S284-000123", "csp-1", date(2026, 1, 1))
    assert kept == CspReview("S284-000123", "csp-1", date(2026, 3, 1), date(2026, 9, 1))
    assert store.csp_reviews() == [kept]


def test_overdue_lists_plans_past_their_review_date(store):
    """On the due date a plan is due, the day after it is overdue; most overdue first."""
    store.record_csp_review("S284-000123", "csp-1", date(2025, 9, 10))  # due 2026-03-10
    store.record_csp_review("S284-000456", "csp-2", date(2025, 8, 1))  # due 2026-02-01
    store.record_csp_review("S284-000789", "csp-3", date(2026, 1, 1))  # due 2026-07-01
    assert [r.csp_id for r in store.overdue(date(2026, 3, 10))] == ["csp-2"]
    assert [r.csp_id for r in store.overdue(date(2026, 3, 11))] == ["csp-2", "csp-1"]


def test_each_notice_is_sent_once_even_across_restarts(store_url):
    """30 and 14 days before, and on, the due date: each notice once, then nothing."""
    due = date(2026, 9, 1)
    first = RoutingStore.open(store_url)
    first.record_csp_review("S284-000123", "csp-1", date(2026, 3, 1))
    assert first.csp_notices_due(due - timedelta(days=31)) == []
    expected = [
        (due - timedelta(days=30), "30d"),
        (due - timedelta(days=14), "14d"),
        (due, "due"),
    ]
    for today, milestone in expected:
        store = RoutingStore.open(store_url)  # a restart between milestones loses nothing
        notices = store.csp_notices_due(today)
        assert notices == [CspNotice("S284-000123", "csp-1", due, milestone)]
        store.mark_csp_notice_sent(notices[0])
        store.mark_csp_notice_sent(notices[0])  # a retried send marks nothing twice
        assert store.csp_notices_due(today) == []
        assert store.csp_notices_due(today + timedelta(days=1)) == []
        store.close()
    assert first.csp_notices_due(due + timedelta(days=40)) == []
    first.close()


def test_after_downtime_only_the_latest_milestone_is_sent(store):
    """Back after missing the 30- and 14-day dates, only the due-date notice goes out."""
    store.record_csp_review("S284-000123", "csp-1", date(2026, 3, 1))
    notices = store.csp_notices_due(date(2026, 9, 2))
    assert [n.milestone for n in notices] == ["due"]
    store.mark_csp_notice_sent(notices[0])
    assert store.csp_notices_due(date(2026, 9, 3)) == []


def test_a_new_review_starts_a_fresh_round_of_notices(store):
    """Once the plan is reviewed again, the next due date gets its own three notices."""
    store.record_csp_review("S284-000123", "csp-1", date(2026, 3, 1))
    [notice] = store.csp_notices_due(date(2026, 8, 2))
    store.mark_csp_notice_sent(notice)
    store.record_csp_review("S284-000123", "csp-1", date(2026, 8, 20))
    assert store.csp_notices_due(date(2026, 8, 21)) == []
    [fresh] = store.csp_notices_due(date(2027, 1, 21))
    assert (fresh.due, fresh.milestone) == (date(2027, 2, 20), "30d")
