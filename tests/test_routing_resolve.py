"""Resolving an alert's designated contact: the offender's area at that moment, the active
row for (agency, area, topic), and the duty inbox with a reason code when routing fails;
`check` reports every uncovered need and every alert parked because of one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from routing import DUTY, Gap, RoutingError, RoutingStore, Topic

EXAMPLE = Path(__file__).parents[1] / "docs" / "examples" / "routing-table.yaml"
MEL = ZoneInfo("Australia/Melbourne")
TUESDAY_10 = datetime(2026, 3, 10, 10, 0, tzinfo=MEL)


@pytest.fixture
def store(store_url):
    s = RoutingStore.open(store_url)
    s.import_table(yaml.safe_load(EXAMPLE.read_text()), actor="admin-01")
    s.set_offender("S284-000123", "cco-0042", "corrections", "north-west-metro", "SO", TUESDAY_10)
    yield s
    s.close()


def test_an_alert_resolves_to_the_designated_contact_with_a_working_time_deadline(store):
    """Police risk in north-west-metro goes to its contact, deputy named, due in 2 h."""
    route = store.resolve("police", "S284-000123", Topic.RISK, TUESDAY_10)
    assert (route.contact_id, route.deputy_id, route.duty, route.reason) == (
        "pol-nwm-017",
        "pol-nwm-022",
        False,
        None,
    )
    assert route.area == "north-west-metro"
    assert route.deadline == TUESDAY_10.astimezone(UTC) + timedelta(hours=2)


@pytest.mark.parametrize(
    ("agency", "offender", "topic", "area", "reason"),
    [
        ("police", "S284-999999", "risk", None, "routing.no_area"),  # unknown offender
        ("police", "S284-000777", "risk", None, "routing.no_area"),  # known, no area
        ("dffh", "S284-000555", "income_support", "barwon-south-west", "routing.no_contact"),
        ("dffh", "S284-000555", "housing", "barwon-south-west", "routing.contact_inactive"),
        ("corrections", "S284-000123", "risk", "north-west-metro", "routing.no_contact"),
    ],
)
def test_routing_failures_go_to_the_duty_inbox_with_a_reason(
    store, agency, offender, topic, area, reason
):
    """No area, nobody covering the need, or a contact who left: the duty inbox, with why."""
    store.set_offender("S284-000777", "cco-0042", "corrections", None, "SO", TUESDAY_10)
    store.set_offender(
        "S284-000555", "cco-0042", "corrections", "barwon-south-west", "SO", TUESDAY_10
    )
    route = store.resolve(agency, offender, topic, TUESDAY_10)
    assert (route.contact_id, route.duty, route.reason, route.deadline) == (
        DUTY,
        True,
        reason,
        None,
    )
    assert route.area == area


def test_routing_follows_an_area_move_from_that_moment(store):
    """After a move, new alerts go to the new area's contact; earlier moments keep the old."""
    moved = TUESDAY_10 + timedelta(days=1)
    store.set_offender("S284-000123", "cco-0042", "corrections", "barwon-south-west", "SO", moved)
    before = store.resolve("police", "S284-000123", "risk", moved - timedelta(minutes=1))
    after = store.resolve("police", "S284-000123", "risk", moved + timedelta(minutes=1))
    assert before.contact_id == "pol-nwm-017"
    assert after.contact_id == "pol-bsw-004"
    current = store.offender("S284-000123")
    assert current is not None
    assert current.area == "barwon-south-west"
    assert current.updated_at == moved.astimezone(UTC)


def test_a_late_older_registry_update_does_not_undo_a_newer_one(store):
    """order.status messages arriving out of order: the latest moment stays current."""
    moved = TUESDAY_10 + timedelta(days=1)
    store.set_offender("S284-000123", "cco-0042", "corrections", "barwon-south-west", "SO", moved)
    store.set_offender(
        "S284-000123", "cco-0042", "corrections", "north-west-metro", "SO", TUESDAY_10
    )
    current = store.offender("S284-000123")
    assert current is not None
    assert current.area == "barwon-south-west"
    earlier = store.offender_at("S284-000123", TUESDAY_10 + timedelta(hours=1))
    assert earlier is not None
    assert earlier.area == "north-west-metro"


def test_an_offender_registered_after_the_alert_moment_still_routes(store):
    """A registry entry stamped a little after the alert (clock skew) is used, not dropped."""
    store.set_offender(
        "S284-000888", "cco-0042", "corrections", "north-west-metro", "SO", TUESDAY_10
    )
    route = store.resolve("police", "S284-000888", "risk", TUESDAY_10 - timedelta(minutes=5))
    assert route.contact_id == "pol-nwm-017"


def test_check_reports_uncovered_needs_and_parked_alerts(store):
    """`routing check` lists each need without an active contact and each parked alert."""
    expected = [
        Gap("dffh", "barwon-south-west", Topic.HOUSING, "routing.contact_inactive"),
        Gap("dffh", "barwon-south-west", Topic.INCOME_SUPPORT, "routing.no_contact"),
    ]
    assert store.check() == expected
    route = store.resolve("police", "S284-999999", "risk", TUESDAY_10)
    store.open_alert(
        "al-1",
        "msg-1",
        route,
        "S284-999999",
        "risk",
        "corrections",
        "risk_reduction",
        TUESDAY_10,
        b"x",
    )
    parked = Gap("police", None, Topic.RISK, "routing.no_area", alert_id="al-1")
    assert store.check() == [*expected, parked]
    store.acknowledge("al-1", by="duty-officer-3", at=TUESDAY_10 + timedelta(minutes=5))
    assert store.check() == expected


def test_without_a_table_everything_goes_to_duty(store_url):
    """Before any table is imported, alerts still reach the duty inbox with a reason."""
    s = RoutingStore.open(store_url)
    try:
        s.set_offender(
            "S284-000123", "cco-0042", "corrections", "north-west-metro", "SO", TUESDAY_10
        )
        route = s.resolve("police", "S284-000123", "risk", TUESDAY_10)
        assert (route.contact_id, route.reason) == (DUTY, "routing.no_contact")
        assert s.check() == []
        with pytest.raises(RoutingError, match=r"routing\.unknown_topic"):
            s.resolve("police", "S284-000123", "gardening", TUESDAY_10)
    finally:
        s.close()
