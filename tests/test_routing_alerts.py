"""Routed alerts: stored once per (message, agency), acknowledged once, escalated to the
deputy then the duty inbox when not acknowledged in working time, each step recorded, and
the escalation state survives a restart."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from routing import DUTY, AlertStatus, RoutingError, RoutingStore

EXAMPLE = Path(__file__).parents[1] / "docs" / "examples" / "routing-table.yaml"
MEL = ZoneInfo("Australia/Melbourne")
TUESDAY_10 = datetime(2026, 3, 10, 10, 0, tzinfo=MEL)
OFFENDER = "S284-000123"


def _open(s: RoutingStore, url=None) -> RoutingStore:
    s.import_table(yaml.safe_load(EXAMPLE.read_text()), actor="admin-01")
    s.set_offender(OFFENDER, "cco-0042", "corrections", "north-west-metro", "SO", TUESDAY_10)
    return s


@pytest.fixture
def store(store_url):
    s = _open(RoutingStore.open(store_url))
    yield s
    s.close()


def alert(store, n=1, agency="police", topic="risk", at=TUESDAY_10, message_id=None):
    route = store.resolve(agency, OFFENDER, topic, at)
    return store.open_alert(
        f"al-{n}", message_id or f"msg-{n}", route, OFFENDER, topic, "corrections",
        "risk_reduction", at, f"sealed-{n}".encode(),
    )  # fmt: skip


def test_a_redelivered_message_opens_no_second_alert(store):
    """The same message routed to the same agency twice yields the one alert already open."""
    first = alert(store, 1)
    again = alert(store, 2, message_id="msg-1")
    assert again == first
    assert [a.alert_id for a in store.open_alerts("police")] == ["al-1"]
    assert store.alert_frame("al-1") == b"sealed-1"
    assert len(store.alert_steps("al-1")) == 1


def test_the_inbox_lists_a_contacts_open_alerts_newest_first(store):
    """A contact sees their own open alerts, newest first; other contacts' are not listed."""
    alert(store, 1)
    alert(store, 2, at=TUESDAY_10 + timedelta(minutes=5))
    alert(store, 3, topic="family_violence", at=TUESDAY_10 + timedelta(minutes=1))
    inbox = store.open_alerts("police", "pol-nwm-017")
    assert [a.alert_id for a in inbox] == ["al-2", "al-1"]
    first = inbox[-1]
    assert (first.offender, first.topic, first.sender_agency, first.purpose) == (
        OFFENDER,
        "risk",
        "corrections",
        "risk_reduction",
    )
    assert (first.status, first.level, first.deadline) == (
        AlertStatus.OPEN,
        0,
        TUESDAY_10.astimezone(UTC) + timedelta(hours=2),
    )
    assert [a.alert_id for a in store.open_alerts("police")] == ["al-2", "al-3", "al-1"]


def test_an_alert_is_acknowledged_once(store):
    """The first acknowledgement counts; a second one, or one for no alert, is refused."""
    alert(store, 1)
    at = TUESDAY_10 + timedelta(minutes=20)
    done = store.acknowledge("al-1", by="pol-nwm-017", at=at)
    assert (done.status, done.acknowledged_by, done.acknowledged_at) == (
        AlertStatus.ACKNOWLEDGED,
        "pol-nwm-017",
        at.astimezone(UTC),
    )
    with pytest.raises(RoutingError) as twice:
        store.acknowledge("al-1", by="pol-nwm-022", at=at + timedelta(minutes=1))
    assert twice.value.reason == "routing.already_acknowledged"
    with pytest.raises(RoutingError) as unknown:
        store.acknowledge("al-404", by="pol-nwm-017", at=at)
    assert unknown.value.reason == "routing.unknown_alert"
    assert store.open_alerts("police") == []
    assert store.due_escalations(at + timedelta(days=3)) == []


def test_an_unacknowledged_alert_escalates_to_the_deputy_then_the_duty_inbox(store):
    """Not acknowledged in 2 working hours: the deputy gets 2 more; then the duty inbox."""
    alert(store, 1)
    due = TUESDAY_10 + timedelta(hours=2)
    assert store.due_escalations(due - timedelta(seconds=1)) == []
    assert [a.alert_id for a in store.due_escalations(due)] == ["al-1"]

    deputy = store.escalate("al-1", due)
    assert (deputy.level, deputy.status, deputy.contact_id) == (
        1,
        AlertStatus.ESCALATED_DEPUTY,
        "pol-nwm-022",
    )
    assert deputy.deadline == (due + timedelta(hours=2)).astimezone(UTC)
    assert store.escalate("al-1", due + timedelta(minutes=1)) == deputy  # not due: unchanged
    assert [a.alert_id for a in store.open_alerts("police", "pol-nwm-022")] == ["al-1"]
    assert store.open_alerts("police", "pol-nwm-017") == []

    duty = store.escalate("al-1", due + timedelta(hours=2))
    assert (duty.level, duty.status, duty.contact_id, duty.deadline) == (
        2,
        AlertStatus.ESCALATED_DUTY,
        DUTY,
        None,
    )
    assert store.escalate("al-1", due + timedelta(days=9)) == duty
    assert store.due_escalations(due + timedelta(days=9)) == []
    acked = store.acknowledge("al-1", by="duty-officer-3", at=due + timedelta(hours=3))
    assert acked.status == AlertStatus.ACKNOWLEDGED
    steps = [(s.level, s.contact_id, s.status) for s in store.alert_steps("al-1")]
    assert steps == [
        (0, "pol-nwm-017", AlertStatus.OPEN),
        (1, "pol-nwm-022", AlertStatus.ESCALATED_DEPUTY),
        (2, DUTY, AlertStatus.ESCALATED_DUTY),
        (2, "duty-officer-3", AlertStatus.ACKNOWLEDGED),
    ]


def test_without_a_deputy_escalation_goes_straight_to_the_duty_inbox(store):
    """A row with no deputy escalates from the contact to the duty inbox in one step."""
    store.set_offender(OFFENDER, "cco-0042", "corrections", "barwon-south-west", "SO", TUESDAY_10)
    opened = alert(store, 1)
    assert opened.contact_id == "pol-bsw-004"
    assert opened.deadline is not None
    duty = store.escalate("al-1", opened.deadline)
    assert (duty.level, duty.contact_id, duty.status) == (2, DUTY, AlertStatus.ESCALATED_DUTY)


def test_a_deputy_can_acknowledge_an_escalated_alert(store):
    """An escalated alert is still open: its current holder acknowledges it."""
    opened = alert(store, 1)
    store.escalate("al-1", opened.deadline)
    acked = store.acknowledge("al-1", by="pol-nwm-022", at=opened.deadline + timedelta(minutes=3))
    assert (acked.level, acked.acknowledged_by) == (1, "pol-nwm-022")
    assert store.escalate("al-1", opened.deadline + timedelta(days=3)).level == 1


def test_racing_escalators_move_an_alert_once(store):
    """Several workers escalating the same due alert: exactly one of them moves it."""
    opened = alert(store, 1)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: store.escalate_if_due("al-1", opened.deadline), range(8)))
    moved = [r for r in results if r is not None]
    assert len(moved) == 1
    assert moved[0].level == 1
    assert len(store.alert_steps("al-1")) == 2


def test_a_duty_routed_alert_is_parked_at_the_duty_inbox_with_its_reason(store):
    """An alert routed to duty starts there, with no deadline and nothing to escalate."""
    store.set_offender(OFFENDER, "cco-0042", "corrections", "barwon-south-west", "SO", TUESDAY_10)
    opened = alert(store, 1, agency="dffh", topic="income_support")
    assert (opened.level, opened.contact_id, opened.deadline, opened.route_reason) == (
        2,
        DUTY,
        None,
        "routing.no_contact",
    )
    assert store.due_escalations(TUESDAY_10 + timedelta(days=30)) == []
    assert [a.alert_id for a in store.open_alerts("dffh", DUTY)] == ["al-1"]


def test_escalation_timers_survive_reopening_the_store(store_url):
    """A process restart loses nothing: the reopened store still escalates the alert."""
    first = _open(RoutingStore.open(store_url))
    opened = alert(first, 1)
    first.close()

    second = RoutingStore.open(store_url)
    try:
        assert opened.deadline is not None
        assert [a.alert_id for a in second.due_escalations(opened.deadline)] == ["al-1"]
        escalated = second.escalate("al-1", opened.deadline)
        assert (escalated.level, escalated.contact_id) == (1, "pol-nwm-022")
        assert second.alert_frame("al-1") == b"sealed-1"
    finally:
        second.close()
    third = RoutingStore.open(store_url)
    try:
        again = third.alert("al-1")
        assert again is not None
        assert again.deadline is not None
        assert again.deadline.tzinfo is not None
        assert third.escalate("al-1", again.deadline).level == 2
    finally:
        third.close()
